import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { createJob, recordsOwnedBy, testRedis } from "../support/jobs.ts";
import { uniqueJobId } from "../support/redis.ts";
import { bearer, call, testUser, WORKER_ORIGIN } from "../support/worker-client.ts";

// Cross-site request forgery against the cookie session. The Worker is http://example.com here;
// http://evil.example.com is another origin of the same site, whose requests carry the victim's
// __session cookie (SameSite=Lax lets same-site requests have it). CORS_ORIGINS lists
// https://app.example.com (vitest.config.ts). The headers below are the ones a browser sends.
const redis = testRedis(env);
const EVIL = "http://evil.example.com";
const spec = JSON.stringify({ steps: [{ name: "Steal", phase: "build", command: "env" }] });
const victim = testUser();
// The legitimate calls below sign in as someone else, so they never add to the victim's count.
const user = testUser();

const post = (path: string, headers: Record<string, string>, body: string = spec) =>
  call(path, { method: "POST", headers, body });
const withCookie = async (headers: Record<string, string>, who = victim) => ({
  Cookie: `__session=${await who.token()}`,
  ...headers,
});

// Every job record the victim owns: an attack that got through would have written one.
const victimsJobs = (): Promise<number> => recordsOwnedBy(redis, victim.id);

async function expectCsrfRejected(response: Response): Promise<void> {
  expect(response.status).toBe(403);
  expect(await response.json()).toMatchObject({ error: { code: "csrf_rejected" } });
}

describe("cookie-authenticated POSTs from another origin of the same site", () => {
  it.each([
    [
      "a text/plain form post (JSON hidden in the field name)",
      {
        "Content-Type": "text/plain",
        Origin: EVIL,
        "Sec-Fetch-Site": "same-site",
        "Sec-Fetch-Mode": "navigate",
      },
      // enctype=text/plain sends `name=value`: the name ends inside a string the value closes.
      `{"steps":[{"name":"Steal","phase":"build","command":"env =  "}]}`,
    ],
    [
      "an urlencoded form post",
      {
        "Content-Type": "application/x-www-form-urlencoded",
        Origin: EVIL,
        "Sec-Fetch-Site": "same-site",
      },
      `steps=${encodeURIComponent(spec)}`,
    ],
    [
      "a no-cors fetch (its Content-Type can only be a simple one)",
      {
        "Content-Type": "text/plain;charset=UTF-8",
        Origin: EVIL,
        "Sec-Fetch-Site": "same-site",
        "Sec-Fetch-Mode": "no-cors",
      },
      spec,
    ],
    [
      "JSON from the other origin (what a preflight would have stopped)",
      { "Content-Type": "application/json", Origin: EVIL, "Sec-Fetch-Site": "same-site" },
      spec,
    ],
    [
      "JSON from a sandboxed frame (Origin: null)",
      { "Content-Type": "application/json", Origin: "null", "Sec-Fetch-Site": "cross-site" },
      spec,
    ],
    [
      "JSON with no Origin from another site",
      { "Content-Type": "application/json", "Sec-Fetch-Site": "same-site" },
      spec,
    ],
    ["JSON that says nothing of where it comes from", { "Content-Type": "application/json" }, spec],
  ])("refuse %s with 403 csrf_rejected, and no job is created", async (_case, headers, body) => {
    await expectCsrfRejected(await post("/api/jobs", await withCookie(headers), body));
    expect(await victimsJobs()).toBe(0);
  });

  it("cannot take a stream ticket for the victim's job either", async () => {
    const jobId = uniqueJobId("csrf-ticket");
    await createJob(redis, jobId, victim.id);
    await expectCsrfRejected(
      await post(
        `/api/jobs/${jobId}/logs/ticket`,
        await withCookie({
          "Content-Type": "text/plain",
          Origin: EVIL,
          "Sec-Fetch-Site": "same-site",
        }),
        "",
      ),
    );
  });
});

describe("what keeps working", () => {
  it.each([
    ["the Worker's own origin", { Origin: WORKER_ORIGIN, "Sec-Fetch-Site": "same-origin" }],
    [
      "an origin in CORS_ORIGINS",
      { Origin: "https://app.example.com", "Sec-Fetch-Site": "cross-site" },
    ],
    ["no Origin but Sec-Fetch-Site: same-origin", { "Sec-Fetch-Site": "same-origin" }],
    [
      "a charset on the JSON type",
      { Origin: WORKER_ORIGIN, "Content-Type": "application/json; charset=utf-8" },
    ],
  ])("a cookie-authenticated JSON POST from %s creates the job", async (_case, headers) => {
    const response = await post(
      "/api/jobs",
      await withCookie({ "Content-Type": "application/json", ...headers }, user),
    );
    expect(response.status).toBe(201);
  });

  it("a Bearer call is not held to any of it, whatever its origin and content type", async () => {
    const response = await post(
      "/api/jobs",
      bearer(await user.token(), {
        // A stale cookie beside the Bearer token does not make it a cookie call.
        Cookie: "__session=stale",
        "Content-Type": "text/plain",
        Origin: EVIL,
      }),
    );
    expect(response.status).toBe(201);
  });

  it("a cookie GET from anywhere is still answered (CORS keeps its body from the other page)", async () => {
    const jobId = uniqueJobId("csrf-get");
    await createJob(redis, jobId, victim.id);
    const response = await call(`/api/jobs/${jobId}`, {
      headers: await withCookie({ Origin: EVIL, "Sec-Fetch-Site": "same-site" }),
    });
    expect(response.status).toBe(200);
    expect(response.headers.get("Access-Control-Allow-Origin")).toBeNull();
  });

  it("a POST with neither cookie nor token is still 401, not 403", async () => {
    const response = await post("/api/jobs", { "Content-Type": "text/plain", Origin: EVIL });
    expect(response.status).toBe(401);
  });
});
