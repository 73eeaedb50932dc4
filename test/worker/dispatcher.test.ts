import { runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { afterEach, describe, expect, it } from "vitest";
import { jobDispatcher } from "../../src/jobs/dispatcher.ts";
import { sweep } from "../../src/jobs/sweep.ts";
import { decodeStreamReply } from "../../src/shared/entry.ts";
import { logStreamKey, QUEUED_JOBS_KEY } from "../../src/shared/keys.ts";
import { testRedis } from "../support/jobs.ts";
import { asRunner, BUILD_SPEC, testUser } from "../support/worker-client.ts";

// The dispatcher against the runner service's real answers (test/support/test-runner-server.ts:
// 3 slots, 202 or 503, jobs of `user_hold_*` owners run until the test finishes them). Jobs go
// the whole way in: POST /api/jobs, the Queue, its consumer, the dispatcher, the runner; ends
// come back through POST /internal/jobs/:id/finished, as the runner reports them.
const redis = testRedis(env);
const RUNNER = env.TEST_RUNNER_URL;
const running: string[] = [];

// Nothing of a test may hold a runner slot into the next: jobs still waiting are let go first,
// then every one the runner started is finished.
afterEach(async () => {
  const jobs = running.splice(0);
  for (const jobId of jobs) await jobDispatcher(env).ended(jobId);
  await new Promise((resolve) => setTimeout(resolve, 100));
  for (const jobId of jobs) await fetch(`${RUNNER}/__test/finish/${jobId}`, { method: "POST" });
});

const user = (kind: string) => `user_${kind}_${crypto.randomUUID().replaceAll("-", "")}`;

const createJob = (owner: string): Promise<string> =>
  testUser(owner).createJob({
    ...BUILD_SPEC,
    secrets: { DEPLOY_TOKEN: "dispatch-test-secret-value" },
  });

async function startedByRunner(): Promise<string[]> {
  const response = await fetch(`${RUNNER}/__test/started`);
  return ((await response.json()) as { started: string[] }).started;
}

async function eventually<T>(what: string, probe: () => Promise<T | undefined>): Promise<T> {
  for (let i = 0; i < 200; i++) {
    const value = await probe();
    if (value !== undefined) return value;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`timed out waiting for ${what}`);
}

/** The runner starts of these jobs, oldest first, once there are `count` of them. */
function startsOf(jobs: readonly string[], count: number): Promise<string[]> {
  return eventually(`${count} of the jobs to start`, async () => {
    const started = (await startedByRunner()).filter((jobId) => jobs.includes(jobId));
    return started.length >= count ? started : undefined;
  });
}

function waitsInDispatcher(jobId: string): Promise<true> {
  return eventually(`${jobId} to wait in the dispatcher`, async () =>
    (await jobDispatcher(env).holds(jobId)) === "pending" ? true : undefined,
  );
}

/** The job's end, as the runner reports it: its slot frees, then the Worker hears of it. */
async function finish(jobId: string): Promise<void> {
  await fetch(`${RUNNER}/__test/finish/${jobId}`, { method: "POST" });
  expect((await asRunner(jobId, "finished")).status).toBe(202);
}

/**
 * Creates the jobs one after another, each once the one before is in the dispatcher's hands
 * (started or waiting), so each is dispatched before the next arrives: the order that once let a
 * user whose jobs were all running lose their turn.
 */
async function createAll(owner: string, count: number): Promise<string[]> {
  const jobs: string[] = [];
  for (let i = 0; i < count; i++) {
    const jobId = await createJob(owner);
    running.push(jobId);
    await eventually(`${jobId} to reach the dispatcher`, async () =>
      (await jobDispatcher(env).holds(jobId)) === null ? undefined : true,
    );
    jobs.push(jobId);
  }
  return jobs;
}

describe("the dispatcher", () => {
  it("starts another user's job at the next free slot, ahead of a backlog", async () => {
    const a = await createAll(user("hold"), 4);
    const c = await createAll(user("hold"), 2);
    const [a1, a2, a3] = a;
    const [c1, c2] = c;
    // A has its 2 (its limit) and C its first: the runner's 3 slots are full.
    expect(new Set(await startsOf([...a, ...c], 3))).toEqual(new Set([a1, a2, c1]));
    const [b1] = await createAll(user("hold"), 1);
    await waitsInDispatcher(b1 ?? "");
    expect(await jobDispatcher(env).holds(a3 ?? "")).toBe("pending");
    expect(await jobDispatcher(env).holds(c2 ?? "")).toBe("pending");

    await finish(a1 ?? "");
    // A and C have 1 running each, B none: B's job goes first, though theirs are older.
    const starts = await startsOf([...a, ...c, b1 ?? ""], 4);
    expect(starts[3]).toBe(b1);
  });

  it("holds a user's third job back while two of theirs run, though a slot is free", async () => {
    const a = await createAll(user("hold"), 3);
    const [a1, , a3] = a;
    await startsOf(a, 2);
    await waitsInDispatcher(a3 ?? "");
    // The free slot goes to anyone else at once.
    const b1 = await createJob(user("hold"));
    running.push(b1);
    expect((await startsOf([...a, b1], 3))[2]).toBe(b1);
    expect(await jobDispatcher(env).holds(a3 ?? "")).toBe("pending");
    await finish(b1);
    await finish(a1 ?? "");
    expect((await startsOf(a, 3))[2]).toBe(a3);
  });

  it("hands a job over at the next sweep when the alarm that should have done it was lost", async () => {
    const a = await createAll(user("lost"), 3);
    const [a1 = "", , a3 = ""] = a;
    await startsOf(a, 2);
    await waitsInDispatcher(a3);
    // a1 ends, and the alarm its end set is lost. Deleted here; workerd left one stored and
    // never fired, which the sweep's poke sets again too (alarmToRepair, test/shared/alarm.test.ts).
    // Nothing else would wake the dispatcher: no job is created or ends.
    await fetch(`${RUNNER}/__test/finish/${a1}`, { method: "POST" });
    await runInDurableObject(jobDispatcher(env), async (_instance, state) => {
      state.storage.sql.exec("UPDATE started SET ended_at = ? WHERE job_id = ?", Date.now(), a1);
      await state.storage.deleteAlarm();
    });
    await sweep(env);
    expect((await startsOf(a, 3))[2]).toBe(a3);
  });

  it("lets a job wait past the queue's bound behind its owner's own running jobs", async () => {
    const a = await createAll(user("hold"), 3);
    const [a1, , a3 = ""] = a;
    await startsOf(a, 2);
    await waitsInDispatcher(a3);
    // Queued 31 minutes ago: past the sweep's 30-minute bound, but it waits on its owner.
    await redis.zadd(QUEUED_JOBS_KEY, { score: Date.now() - 31 * 60_000, member: a3 });
    const { failed } = await sweep(env);
    expect(failed).not.toContain(a3);
    expect(await jobDispatcher(env).holds(a3)).toBe("pending");
    expect(Number(await redis.zscore(QUEUED_JOBS_KEY, a3))).toBeGreaterThan(Date.now() - 60_000);
    await finish(a1 ?? "");
    expect((await startsOf(a, 3))[2]).toBe(a3);
  });

  it("fails a job the runner refuses, with a system line its viewers see", async () => {
    // A runner whose JOB_SECRETS_KEY differs cannot open the job's values: it answers 400.
    const jobId = await createJob(user("wrongkey"));
    const status = await eventually("the job to fail", async () => {
      const raw = await redis.get<string>(`job:${jobId}:meta`);
      const job = JSON.parse(raw ?? "{}") as { status?: string };
      return job.status === "failed" ? job.status : undefined;
    });
    expect(status).toBe("failed");
    const entries = decodeStreamReply(await redis.xrange(logStreamKey(jobId), "-", "+"));
    expect(entries.at(-1)?.end).toBe("failed");
    expect(entries.flatMap((entry) => entry.lines)[0]?.text).toBe(
      "No build runner took this job (the runner answered 400 sealed_values_invalid).",
    );
    expect(await jobDispatcher(env).holds(jobId)).toBeNull();
  });

  it("keeps a job queued while the runner cannot be reached, and hands it over later", async () => {
    // A gateway in front of the runner answers 502 for this owner: the dispatcher backs off.
    const jobId = await createJob(user("down"));
    await waitsInDispatcher(jobId);
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(await jobDispatcher(env).holds(jobId)).toBe("pending");
    const raw = await redis.get<string>(`job:${jobId}:meta`);
    expect(JSON.parse(raw ?? "{}")).toMatchObject({ status: "queued" });
    // What the sweep does to a job queued too long: it ends, and the dispatcher lets it go.
    await jobDispatcher(env).ended(jobId);
    expect(await jobDispatcher(env).holds(jobId)).toBeNull();
  });
});
