import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { archiveRecord } from "../../src/jobs/expiry.ts";
import { listJobs, ownerJobsKey } from "../../src/jobs/listing.ts";
import { r2Store } from "../../src/log/archive-store.ts";
import type { JobRecord } from "../../src/shared/job.ts";
import { jobKey } from "../../src/shared/keys.ts";
import { testRedis } from "../support/jobs.ts";
import { testUserId } from "../support/tokens.ts";
import { call, errorOf, testUser } from "../support/worker-client.ts";

// GET /api/jobs: the caller's jobs newest first, from an index per owner written at creation,
// one EVAL per page; records that left Redis come from the archive's copy.
const redis = testRedis(env);

async function create(userId: string, count: number): Promise<string[]> {
  const user = testUser(userId);
  const ids: string[] = [];
  for (let i = 0; i < count; i++) {
    ids.push(
      await user.createJob({ steps: [{ name: "Build", phase: "build", command: `echo ${i}` }] }),
    );
    // Distinct creation times, so "newest first" has one answer (ids never collide either way).
    await new Promise((resolve) => setTimeout(resolve, 2));
  }
  return ids;
}

interface ListPage {
  jobs: JobRecord[];
  next_cursor: string | null;
}
async function list(userId: string, query = ""): Promise<ListPage> {
  const response = await testUser(userId).get(`/api/jobs${query}`);
  expect(response.status).toBe(200);
  return (await response.json()) as ListPage;
}

describe("GET /api/jobs", () => {
  it("lists the caller's jobs newest first, in pages whose cursors meet exactly", async () => {
    const user = testUserId();
    const ids = await create(user, 5);
    await create(testUserId(), 1);
    const first = await list(user, "?limit=2");
    expect(first.jobs.map((job) => job.id)).toEqual([ids[4], ids[3]]);
    expect(first.next_cursor).not.toBeNull();
    const second = await list(user, `?limit=2&cursor=${first.next_cursor}`);
    expect(second.jobs.map((job) => job.id)).toEqual([ids[2], ids[1]]);
    const third = await list(user, `?limit=2&cursor=${second.next_cursor}`);
    expect(third).toEqual({
      jobs: [expect.objectContaining({ id: ids[0], owner: user, status: "queued" })],
      next_cursor: null,
    });
    expect((await list(user)).jobs.map((job) => job.id)).toEqual([...ids].reverse());
    expect(await list(testUserId())).toEqual({ jobs: [], next_cursor: null });
  });

  it("filters by status", async () => {
    const user = testUserId();
    const ids = await create(user, 4);
    for (const id of [ids[0], ids[2]]) {
      const job = JSON.parse((await redis.get<string>(jobKey(id ?? ""))) ?? "{}") as JobRecord;
      await redis.set(
        jobKey(job.id),
        JSON.stringify({ ...job, status: "failed", finished_at: new Date().toISOString() }),
      );
    }
    expect((await list(user, "?status=failed")).jobs.map((job) => job.id)).toEqual([
      ids[2],
      ids[0],
    ]);
    expect((await list(user, "?status=queued")).jobs.map((job) => job.id)).toEqual([
      ids[3],
      ids[1],
    ]);
    const one = await list(user, "?status=failed&limit=1");
    expect(one.jobs.map((job) => job.id)).toEqual([ids[2]]);
    expect(
      (await list(user, `?status=failed&limit=1&cursor=${one.next_cursor}`)).jobs.map(
        (job) => job.id,
      ),
    ).toEqual([ids[0]]);
  });

  it("reads a job whose record left Redis from the archive, and drops one that is nowhere", async () => {
    const user = testUserId();
    const [gone, archived, live] = await create(user, 3);
    const record = JSON.parse(
      (await redis.get<string>(jobKey(archived ?? ""))) ?? "{}",
    ) as JobRecord;
    const ended: JobRecord = {
      ...record,
      status: "ready",
      finished_at: new Date().toISOString(),
      archived_at: new Date().toISOString(),
    };
    await archiveRecord(r2Store(env.ARCHIVE), ended);
    await redis.del(jobKey(archived ?? ""), jobKey(gone ?? ""));
    const page = await list(user);
    expect(page.jobs).toEqual([expect.objectContaining({ id: live }), ended]);
    await expect.poll(async () => (await redis.zrange(ownerJobsKey(user), 0, -1)).length).toBe(2);
  });

  it("costs one Redis request per page", async () => {
    const user = testUserId();
    await create(user, 3);
    const upstash = new URL(env.UPSTASH_REDIS_REST_URL).origin;
    const original = globalThis.fetch;
    let requests = 0;
    globalThis.fetch = (input, init) => {
      if (new URL(input instanceof Request ? input.url : String(input)).origin === upstash)
        requests += 1;
      return original(input, init);
    };
    try {
      const page = await listJobs(redis, r2Store(env.ARCHIVE), { owner: user, limit: 3 });
      expect(page.jobs).toHaveLength(3);
    } finally {
      globalThis.fetch = original;
    }
    expect(requests).toBe(1);
  });

  it.each([
    ["?status=done", "invalid_status", /status: must be one of queued, running, ready, failed/],
    ["?cursor=zzz", "invalid_cursor", /cursor: not a job list cursor/],
    ["?limit=0", "invalid_limit", /limit: must be an integer from 1 to 100/],
    ["?limit=101", "invalid_limit", /limit/],
  ])("refuses %s with %s", async (query, code, message) => {
    const response = await testUser().get(`/api/jobs${query}`);
    expect(response.status).toBe(400);
    const error = await errorOf(response);
    expect(error.code).toBe(code);
    expect(error.message).toMatch(message);
  });

  it("needs a session", async () => {
    const response = await call("/api/jobs");
    expect(response.status).toBe(401);
  });
});
