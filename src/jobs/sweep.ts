import { archiveStoreFromEnv } from "../log/archive-store.ts";
import { archiveLog, archiveOptionsFromEnv } from "../log/archiver.ts";
import { createRedis } from "../redis.ts";
import { leaseKey, RUNNING_JOBS_KEY, UNARCHIVED_JOBS_KEY } from "../shared/keys.ts";
import { recordTtlSeconds } from "./expiry.ts";
import { failJob } from "./lifecycle.ts";

export const LOST_RUNNER_MESSAGE =
  "The build runner was lost (it stopped reporting); this job has been marked failed.";
const ARCHIVES_PER_SWEEP = 25;
const SEGMENTS_PER_SWEEP = 24;

/**
 * The scheduled sweep (Cron Trigger): fails running jobs whose runner lease expired, ending
 * their viewers' streams, and archives ended jobs that missed it, well within Redis's 24 hours.
 */
export async function sweep(env: Env): Promise<{ failed: string[]; archived: string[] }> {
  const redis = createRedis(env);
  const running = await redis.zrange<string[]>(RUNNING_JOBS_KEY, 0, -1);
  const failed: string[] = [];
  if (running.length > 0) {
    const p = redis.pipeline();
    for (const jobId of running) p.exists(leaseKey(jobId));
    const leases = await p.exec<number[]>();
    for (const [i, jobId] of running.entries()) {
      if (Number(leases[i]) !== 0) continue;
      await failJob(redis, jobId, LOST_RUNNER_MESSAGE);
      await env.JOB_STREAM.getByName(jobId).wake();
      failed.push(jobId);
    }
  }
  const store = archiveStoreFromEnv(env);
  const unarchived = await redis.zrange<string[]>(UNARCHIVED_JOBS_KEY, 0, ARCHIVES_PER_SWEEP - 1);
  const archived: string[] = [];
  // Ended jobs first (they finish their archive), then running ones: their complete segments,
  // in case their runner cannot reach the Worker. One budget of segments per sweep keeps an
  // invocation inside its subrequests whatever the backlog; the next sweep goes on.
  const options = archiveOptionsFromEnv(env);
  let budget = SEGMENTS_PER_SWEEP;
  const stillRunning = running.filter((jobId) => !failed.includes(jobId));
  for (const jobId of [...unarchived, ...stillRunning]) {
    if (budget <= 0) break;
    try {
      const progress = await archiveLog(redis, store, jobId, {
        ...options,
        recordTtl: recordTtlSeconds(env),
        maxSegments: Math.min(budget, options.maxSegments ?? budget),
      });
      budget -= progress?.written ?? 0;
      if (progress?.complete && unarchived.includes(jobId)) archived.push(jobId);
    } catch (error) {
      console.error(`sweep: archiving job ${jobId} failed; the next sweep retries`, error);
    }
  }
  return { failed, archived };
}
