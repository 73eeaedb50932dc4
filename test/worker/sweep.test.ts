import {
  createExecutionContext,
  createScheduledController,
  waitOnExecutionContext,
} from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import worker from "../../src/index.ts";
import { LOST_RUNNER_MESSAGE } from "../../src/jobs/sweep.ts";
import { indexKey } from "../../src/log/segments.ts";
import { decodeStreamReply } from "../../src/shared/entry.ts";
import { jobKey, leaseKey, logStreamKey, RUNNING_JOBS_KEY } from "../../src/shared/keys.ts";
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
});
