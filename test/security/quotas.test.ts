import type { Redis } from "@upstash/redis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { JobRecord } from "../../src/shared/job.ts";
import { type Stack, startStack } from "../../tools/dev/stack.ts";
import { recordsOwnedBy } from "../support/jobs.ts";
import { stackRedis } from "../support/stack-client.ts";

// One user against the rest, through the real stack (the Worker, its Queue and dispatcher in
// workerd, the runner with 2 slots and the local sandbox): a backlog does not hold another
// user's job back, creating jobs is rate limited, and a job too large for the Queue leaves
// nothing behind. And another origin's page cannot create jobs with a signed-in user's cookie.
let stack: Stack;
let redis: Redis;

beforeAll(async () => {
  stack = await startStack({ runnerOutput: "ignore" });
  redis = stackRedis(stack);
}, 120_000);

afterAll(async () => {
  await stack?.stop();
}, 60_000);

async function api(userId: string, path: string, init: RequestInit = {}): Promise<Response> {
  return fetch(`${stack.workerUrl}${path}`, {
    ...init,
    headers: {
      Authorization: `Bearer ${stack.signToken(userId, 600)}`,
      "Content-Type": "application/json",
    },
  });
}

const job = (command: string, extra: object = {}) =>
  JSON.stringify({ steps: [{ name: "Work", phase: "build", command }], ...extra });

async function create(userId: string, body: string): Promise<string> {
  const response = await api(userId, "/api/jobs", { method: "POST", body });
  expect(response.status).toBe(201);
  return ((await response.json()) as { id: string }).id;
}

async function record(userId: string, jobId: string): Promise<JobRecord> {
  return (await (await api(userId, `/api/jobs/${jobId}`)).json()) as JobRecord;
}

describe("one user cannot starve the rest", () => {
  it("a backlog of 6 jobs holds another user's job back by no more than one job start", async () => {
    const backlog: string[] = [];
    for (let i = 0; i < 6; i++) backlog.push(await create("user_flood", job("sleep 3")));
    const single = await create("user_single", job("true"));
    const postedAt = Date.now();
    let mine: JobRecord | undefined;
    for (let i = 0; i < 600 && !mine?.started_at; i++) {
      mine = await record("user_single", single);
      if (!mine.started_at) await new Promise((resolve) => setTimeout(resolve, 100));
    }
    const startedAt = Date.parse(mine?.started_at ?? "");
    expect(Number.isFinite(startedAt)).toBe(true);
    const ahead = (await Promise.all(backlog.map((jobId) => record("user_flood", jobId)))).filter(
      (other) => {
        const at = Date.parse(other.started_at ?? "");
        return at > postedAt && at < startedAt;
      },
    );
    expect(ahead.length).toBeLessThanOrEqual(1);
  });

  it("answers the 11th job a user creates within a minute 429 with Retry-After", async () => {
    for (let i = 0; i < 10; i++) await create("user_rapid", job("true"));
    const refused = await api("user_rapid", "/api/jobs", { method: "POST", body: job("true") });
    expect(refused.status).toBe(429);
    expect(Number(refused.headers.get("Retry-After"))).toBeGreaterThanOrEqual(1);
    expect(await refused.json()).toMatchObject({ error: { code: "rate_limited" } });
    expect(await recordsOwnedBy(redis, "user_rapid")).toBe(10);
  });

  it("refuses a job too large for the Queue with 413, leaving no record queued forever", async () => {
    const body = job("true", { files: { "notes.txt": "\n".repeat(90_000) } });
    const response = await api("user_large", "/api/jobs", { method: "POST", body });
    expect(response.status).toBe(413);
    expect(await response.json()).toMatchObject({ error: { code: "too_large" } });
    expect(await recordsOwnedBy(redis, "user_large")).toBe(0);
  });
});

describe("a page on another origin of the same site, with the victim's __session cookie", () => {
  const evil = "http://evil.localhost";
  const forged = async (headers: Record<string, string>): Promise<Response> =>
    fetch(`${stack.workerUrl}/api/jobs`, {
      method: "POST",
      headers: { Cookie: `__session=${stack.signToken("user_csrf_victim")}`, ...headers },
      body: job("env"),
    });

  it.each([
    ["a text/plain form post", { "Content-Type": "text/plain", Origin: evil }],
    [
      "a no-cors fetch",
      { "Content-Type": "text/plain;charset=UTF-8", Origin: evil, "Sec-Fetch-Mode": "no-cors" },
    ],
    ["JSON from the other origin", { "Content-Type": "application/json", Origin: evil }],
  ])(
    "cannot create a job: %s is 403 csrf_rejected, and no record is written",
    async (_case, headers) => {
      const response = await forged(headers);
      expect(response.status).toBe(403);
      expect(await response.json()).toMatchObject({ error: { code: "csrf_rejected" } });
      expect(await recordsOwnedBy(redis, "user_csrf_victim")).toBe(0);
    },
  );

  it("while the Worker's own page, with the same cookie, creates it", async () => {
    const response = await forged({
      "Content-Type": "application/json",
      Origin: new URL(stack.workerUrl).origin,
    });
    expect(response.status).toBe(201);
  });
});
