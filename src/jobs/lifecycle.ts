import type { Redis } from "@upstash/redis/cloudflare";
import { encodeEndFields } from "../shared/entry.ts";
import { type JobRecord, parseJobRecord } from "../shared/job.ts";
import { jobKey, logStreamKey, RUNNING_JOBS_KEY, UNARCHIVED_JOBS_KEY } from "../shared/keys.ts";

/**
 * Fails a job from the Worker's side (its runner was lost, or no runner would take it): a
 * system line saying why and the terminal entry go to its stream, so viewers get `done`.
 * The entry id is Redis's own (`*`), which is always after the stream's last entry.
 */
export async function failJob(
  redis: Redis,
  jobId: string,
  reason: string,
): Promise<JobRecord | null> {
  const raw = await redis.get<string>(jobKey(jobId));
  if (raw === null) return null;
  const job = parseJobRecord(raw);
  if (job.status === "ready" || job.status === "failed") return job;
  const now = new Date().toISOString();
  const failed: JobRecord = {
    ...job,
    status: "failed",
    finished_at: now,
    started_at: job.started_at ?? null,
  };
  const p = redis.pipeline();
  p.xadd(
    logStreamKey(jobId),
    "*",
    encodeEndFields("failed", [{ ts: now, source: "system", phase: "build", text: reason }]),
  );
  p.expire(logStreamKey(jobId), 86_400);
  p.set(jobKey(jobId), JSON.stringify(failed));
  p.zrem(RUNNING_JOBS_KEY, jobId);
  p.zadd(UNARCHIVED_JOBS_KEY, { score: Date.now(), member: jobId });
  await p.exec();
  return failed;
}
