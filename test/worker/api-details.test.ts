import { env, exports } from "cloudflare:workers";
import { beforeAll, describe, expect, it } from "vitest";
import { createJob, testRedis } from "../support/jobs.ts";
import { uniqueJobId } from "../support/redis.ts";
import { createTestSigner, type TestSigner, testUserId } from "../support/tokens.ts";

// The small things a developer integrating the API trips over (issue 14).
const redis = testRedis(env);
let signer: TestSigner;
beforeAll(async () => {
  signer = await createTestSigner(env.TEST_CLERK_SIGNING_JWK);
});

const errorOf = async (response: Response): Promise<{ code: string; message: string }> =>
  ((await response.json()) as { error: { code: string; message: string } }).error;

describe("the API's details", () => {
  it("answers a created job with Location and every link, the viewer page included", async () => {
    const response = await exports.default.fetch("http://example.com/api/jobs", {
      method: "POST",
      headers: {
        Authorization: `Bearer ${await signer.sign({ sub: testUserId() })}`,
        "Content-Type": "application/json",
      },
      body: JSON.stringify({ steps: [{ name: "Build", phase: "build", command: "true" }] }),
    });
    expect(response.status).toBe(201);
    const body = (await response.json()) as { id: string; links: Record<string, string> };
    expect(response.headers.get("Location")).toBe(`/api/jobs/${body.id}`);
    expect(body.links).toEqual({
      self: `/api/jobs/${body.id}`,
      logs: `/api/jobs/${body.id}/logs`,
      stream: `/api/jobs/${body.id}/logs/stream`,
      text: `/api/jobs/${body.id}/logs.txt`,
      ticket: `/api/jobs/${body.id}/logs/ticket`,
      viewer: `/jobs/${body.id}`,
    });
  });

  it("names `after` when the stream's ?after= is not a cursor, and Last-Event-ID when that is not", async () => {
    const user = testUserId();
    const jobId = uniqueJobId("details-after");
    await createJob(redis, jobId, user);
    const token = await signer.sign({ sub: user });
    const byQuery = await exports.default.fetch(
      `http://example.com/api/jobs/${jobId}/logs/stream?after=zzz`,
      {
        headers: { Authorization: `Bearer ${token}` },
      },
    );
    expect(byQuery.status).toBe(400);
    const queryError = await errorOf(byQuery);
    expect(queryError.code).toBe("invalid_cursor");
    expect(queryError.message).toMatch(/^after: not a log cursor/);
    const byHeader = await exports.default.fetch(
      `http://example.com/api/jobs/${jobId}/logs/stream`,
      {
        headers: { Authorization: `Bearer ${token}`, "Last-Event-ID": "zzz" },
      },
    );
    expect(byHeader.status).toBe(400);
    expect((await errorOf(byHeader)).message).toMatch(/^Last-Event-ID: not a log cursor/);
  });

  it("refuses before and after together on a history page", async () => {
    const user = testUserId();
    const jobId = uniqueJobId("details-both");
    await createJob(redis, jobId, user);
    const response = await exports.default.fetch(
      `http://example.com/api/jobs/${jobId}/logs?before=2-0:0&after=1-0:0`,
      {
        headers: { Authorization: `Bearer ${await signer.sign({ sub: user })}` },
      },
    );
    expect(response.status).toBe(400);
    const error = await errorOf(response);
    expect(error.code).toBe("invalid_cursor");
    expect(error.message).toMatch(/before: cannot be used with after/);
  });

  it("says in words why a garbage token was rejected", async () => {
    const response = await exports.default.fetch("http://example.com/api/jobs/some-job", {
      headers: { Authorization: "Bearer not-a-token" },
    });
    expect(response.status).toBe(401);
    const error = await errorOf(response);
    expect(error.code).toBe("invalid_token");
    expect(error.message).toBe(
      "the session token was rejected: it is not a Clerk session token (a signed JWT)",
    );
  });
});
