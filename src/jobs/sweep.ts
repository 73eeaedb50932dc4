import { workerConfig } from "../config.ts";
import { archiveStoreFromEnv } from "../log/archive-store.ts";
import { archiveLog, archiveOptionsFromEnv } from "../log/archiver.ts";
import { createRedis } from "../redis.ts";
import {
  leaseKey,
  leaseLapseKey,
  QUEUED_JOBS_KEY,
  RUNNING_JOBS_KEY,
  UNARCHIVED_JOBS_KEY,
} from "../shared/keys.ts";
import { log } from "../shared/log.ts";
import { jobDispatcher } from "./dispatcher.ts";
import { recordTtlSeconds } from "./expiry.ts";
import { failJob } from "./lifecycle.ts";

export const LOST_RUNNER_MESSAGE =
  "The build runner was lost (it stopped reporting); this job has been marked failed.";
const ARCHIVES_PER_SWEEP = 25;
const SEGMENTS_PER_SWEEP = 24;
const QUEUED_PER_SWEEP = 100;

export function stuckInQueueMessage(timeoutMs: number): string {
  return `No build runner started this job within ${Math.round(timeoutMs / 60_000)} minutes; it has been marked failed.`;
}

/** From LEASE_LAPSE_GRACE_MS and QUEUED_JOB_TIMEOUT_MS, in the Worker's config schema. */
export interface SweepSettings {
  /** A lease must stay gone this long before its job is failed: longer than a Redis stall. */
  readonly leaseLapseGraceMs: number;
  /** A job still queued this long after it was created is failed. */
  readonly queuedJobTimeoutMs: number;
}

/**
 * The scheduled sweep (Cron Trigger): fails running jobs whose runner is gone and jobs no runner
 * started in time, ending their viewers' streams, and archives ended jobs that missed it, well
 * within Redis's 24 hours. A lease that lapsed is only a suspicion: a Redis stall longer than
 * the lease lets it expire under a healthy runner, which re-takes it once Redis answers. So the
 * first sweep that finds it gone notes when; a later sweep fails the job only if it is still
 * gone past the grace.
 */
export async function sweep(env: Env): Promise<{ failed: string[]; archived: string[] }> {
  const redis = createRedis(env);
  const settings = workerConfig(env).sweep;
  const now = Date.now();
  const failed: string[] = [];
  const fail = async (jobId: string, reason: string, fromSet: string): Promise<void> => {
    const outcome = await failJob(redis, jobId, reason);
    if (outcome.job === null) await redis.zrem(fromSet, jobId);
    if (!outcome.failedNow) return;
    await env.JOB_STREAM.getByName(jobId).wake();
    failed.push(jobId);
  };

  // Dispatching goes on though the dispatcher's alarm was lost.
  await jobDispatcher(env).poke();

  const running = await redis.zrange<string[]>(RUNNING_JOBS_KEY, 0, -1);
  if (running.length > 0) {
    const p = redis.pipeline();
    for (const jobId of running) {
      p.exists(leaseKey(jobId));
      p.get<string>(leaseLapseKey(jobId));
    }
    const replies = await p.exec<(number | string | null)[]>();
    const marks = redis.pipeline();
    let marked = 0;
    for (const [i, jobId] of running.entries()) {
      const held = Number(replies[2 * i]) !== 0;
      const lapsedSince = replies[2 * i + 1];
      if (held) {
        if (lapsedSince !== null) {
          marks.del(leaseLapseKey(jobId));
          marked += 1;
        }
        continue;
      }
      const since = lapsedSince === null ? now : Number(lapsedSince);
      if (now - since >= settings.leaseLapseGraceMs) {
        await fail(jobId, LOST_RUNNER_MESSAGE, RUNNING_JOBS_KEY);
        marks.del(leaseLapseKey(jobId));
        marked += 1;
      } else if (lapsedSince === null) {
        marks.set(leaseLapseKey(jobId), String(now), { nx: true, ex: 86_400 });
        marked += 1;
      }
    }
    if (marked > 0) await marks.exec();
  }

  const stuck = await redis.zrange<string[]>(
    QUEUED_JOBS_KEY,
    "-inf",
    now - settings.queuedJobTimeoutMs,
    { byScore: true, offset: 0, count: QUEUED_PER_SWEEP },
  );
  if (stuck.length > 0) {
    // A job behind its owner's own running jobs waits by design (fair dispatch): its clock
    // restarts instead, so the bound counts only time the system could not start it.
    const ownBacklog = new Set(await jobDispatcher(env).waitingOnOwner(stuck));
    if (ownBacklog.size > 0) {
      const p = redis.pipeline();
      for (const jobId of ownBacklog)
        p.zadd(QUEUED_JOBS_KEY, { xx: true }, { score: now, member: jobId });
      await p.exec();
    }
    for (const jobId of stuck)
      if (!ownBacklog.has(jobId))
        await fail(jobId, stuckInQueueMessage(settings.queuedJobTimeoutMs), QUEUED_JOBS_KEY);
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
      log.error(`sweep: archiving job ${jobId} failed; the next sweep retries`, error);
    }
  }
  return { failed, archived };
}
