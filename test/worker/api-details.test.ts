import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { createJob, testRedis } from "../support/jobs.ts";
import { uniqueJobId } from "../support/redis.ts";
import { BUILD_SPEC, errorOf, getWith, testUser } from "../support/worker-client.ts";

// The small things a developer integrating the API trips over (issue 14).
const redis = testRedis(env);

describe("the API's details", () => {
  it("answers a created job with Location and every link, the viewer page included", async () => {
    const response = await testUser().post("/api/jobs", BUILD_SPEC);
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
    const user = testUser();
    const jobId = uniqueJobId("details-after");
    await createJob(redis, jobId, user.id);
    const byQuery = await user.get(`/api/jobs/${jobId}/logs/stream?after=zzz`);
    expect(byQuery.status).toBe(400);
    const queryError = await errorOf(byQuery);
    expect(queryError.code).toBe("invalid_cursor");
    expect(queryError.message).toMatch(/^after: not a log cursor/);
    const byHeader = await user.stream(jobId, { lastEventId: "zzz" });
    expect(byHeader.status).toBe(400);
    expect((await errorOf(byHeader)).message).toMatch(/^Last-Event-ID: not a log cursor/);
  });

  it("refuses before and after together on a history page", async () => {
    const user = testUser();
    const jobId = uniqueJobId("details-both");
    await createJob(redis, jobId, user.id);
    const response = await user.get(`/api/jobs/${jobId}/logs?before=2-0:0&after=1-0:0`);
    expect(response.status).toBe(400);
    const error = await errorOf(response);
    expect(error.code).toBe("invalid_cursor");
    expect(error.message).toMatch(/before: cannot be used with after/);
  });

  it("says in words why a garbage token was rejected", async () => {
    const response = await getWith("not-a-token", "/api/jobs/some-job");
    expect(response.status).toBe(401);
    const error = await errorOf(response);
    expect(error.code).toBe("invalid_token");
    expect(error.message).toBe(
      "the session token was rejected: it is not a Clerk session token (a signed JWT)",
    );
  });
});
