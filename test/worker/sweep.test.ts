import {
  createExecutionContext,
  createScheduledController,
  waitOnExecutionContext,
} from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import worker from "../../src/index.ts";
import { failJob } from "../../src/jobs/lifecycle.ts";
import { LOST_RUNNER_MESSAGE, stuckInQueueMessage, sweep } from "../../src/jobs/sweep.ts";
import { indexKey } from "../../src/log/segments.ts";
import { decodeStreamReply } from "../../src/shared/entry.ts";
import {
  jobKey,
  leaseKey,
  leaseLapseKey,
  logStreamKey,
  QUEUED_JOBS_KEY,
  RUNNING_JOBS_KEY,
} from "../../src/shared/keys.ts";
import { createJob, streamWriter, testRedis } from "../support/jobs.ts";
import { uniqueJobId } from "../support/redis.ts";

// The Cron Trigger's handler, as Cloudflare calls it: lost runners and missed archives.
const redis = testRedis(env);

async function runningJob(label: string, withLease: boolean): Promise<string> {
  const jobId = uniqueJobId(label);
  await createJob(redis, jobId, "user_sweep", "running");
  await redis.zadd(RUNNING_JOBS_KEY, { score: Date.now(), member: jobId });
  if (withLease) await redis.set(leaseKey(jobId), "runner-alive", { px: 60_000 });
  await streamWriter(redis, jobId).append("working...");
  return jobId;
}

async function runCron(): Promise<void> {
  const ctx = createExecutionContext();
  await worker.scheduled(
    createScheduledController({ scheduledTime: Date.now(), cron: "* * * * *" }),
    env,
    ctx,
  );
  await waitOnExecutionContext(ctx);
}

describe("the scheduled sweep", () => {
  it("fails a running job whose lease expired, ends its log, and archives it; leaves a live one alone", async () => {
    const lost = await runningJob("lost", false);
    const alive = await runningJob("alive", true);
    await runCron();
    const lostJob = JSON.parse((await redis.get<string>(jobKey(lost))) ?? "{}") as {
      status: string;
      archived_at?: string;
    };
    expect(lostJob.status).toBe("failed");
    const entries = decodeStreamReply(await redis.xrange(logStreamKey(lost), "-", "+"));
    expect(entries.at(-1)?.end).toBe("failed");
    expect(entries.flatMap((entry) => entry.lines).map((line) => line.text)).toEqual([
      "working...",
      LOST_RUNNER_MESSAGE,
    ]);
    expect(await redis.zscore(RUNNING_JOBS_KEY, lost)).toBeNull();
    // Archived by the same sweep, since the job ended before its archive pass.
    expect(lostJob.archived_at).toBeTruthy();
    expect(await env.ARCHIVE.get(indexKey(lost))).not.toBeNull();

    const aliveJob = JSON.parse((await redis.get<string>(jobKey(alive))) ?? "{}") as {
      status: string;
    };
    expect(aliveJob.status).toBe("running");
    expect(await redis.zscore(RUNNING_JOBS_KEY, alive)).not.toBeNull();
  });

  it("fails a lost runner's job only once its lease stayed gone past the grace", async () => {
    const graceful = { ...env, LEASE_LAPSE_GRACE_MS: "60000" } as Env;
    const stalled = await runningJob("stalled", false);
    // First sight of the lapse (a Redis stall outliving the lease looks the same): noted only.
    expect((await sweep(graceful)).failed).not.toContain(stalled);
    expect(await statusOf(stalled)).toBe("running");
    expect(await redis.get(leaseLapseKey(stalled))).not.toBeNull();
    // The runner re-took its lease once Redis answered: the suspicion is dropped.
    await redis.set(leaseKey(stalled), "runner-back", { px: 60_000 });
    await sweep(graceful);
    expect(await redis.get(leaseLapseKey(stalled))).toBeNull();
    expect(await statusOf(stalled)).toBe("running");
    // Gone for longer than the grace: failed.
    await redis.del(leaseKey(stalled));
    await redis.set(leaseLapseKey(stalled), String(Date.now() - 61_000));
    expect((await sweep(graceful)).failed).toContain(stalled);
    expect(await statusOf(stalled)).toBe("failed");
  });

  it("fails a job left queued past its bound with a system line, and leaves a fresh one", async () => {
    const old = uniqueJobId("stuck");
    const fresh = uniqueJobId("fresh");
    await createJob(redis, old, "user_sweep", "queued");
    await createJob(redis, fresh, "user_sweep", "queued");
    await redis.zadd(QUEUED_JOBS_KEY, { score: Date.now() - 31 * 60_000, member: old });
    await redis.zadd(QUEUED_JOBS_KEY, { score: Date.now(), member: fresh });
    await runCron();
    expect(await statusOf(old)).toBe("failed");
    const entries = decodeStreamReply(await redis.xrange(logStreamKey(old), "-", "+"));
    expect(entries.at(-1)?.end).toBe("failed");
    expect(entries.flatMap((entry) => entry.lines).map((line) => line.text)).toEqual([
      stuckInQueueMessage(30 * 60_000),
    ]);
    expect(await redis.zscore(QUEUED_JOBS_KEY, old)).toBeNull();
    expect(await statusOf(fresh)).toBe("queued");
    expect(await redis.zscore(QUEUED_JOBS_KEY, fresh)).not.toBeNull();
  });

  it("ends a job once: failing a job that ended (or changed) since it was read writes nothing", async () => {
    const jobId = await runningJob("ended-first", false);
    expect((await failJob(redis, jobId, "first")).failedNow).toBe(true);
    expect((await failJob(redis, jobId, "second")).failedNow).toBe(false);
    const entries = decodeStreamReply(await redis.xrange(logStreamKey(jobId), "-", "+"));
    expect(entries.filter((entry) => entry.end !== undefined)).toHaveLength(1);
    expect(entries.flatMap((entry) => entry.lines).map((line) => line.text)).toEqual([
      "working...",
      "first",
    ]);
  });
});

async function statusOf(jobId: string): Promise<string | undefined> {
  const raw = await redis.get<string>(jobKey(jobId));
  return raw === null ? undefined : (JSON.parse(raw) as { status: string }).status;
}
