import type { Redis } from "@upstash/redis/cloudflare";
import { encodeEndFields } from "../shared/entry.ts";
import {
  isTerminalStatus,
  type JobRecord,
  type JobStatus,
  parseJobRecord,
  type TerminalStatus,
} from "../shared/job.ts";
import { END_JOB_LUA, endArgs, endKeys, parseEndReply } from "../shared/job-scripts.ts";
import { jobKey } from "../shared/keys.ts";

const STREAM_TTL_SECONDS = 86_400;

export interface FailOutcome {
  /** Whether this call ended the job (false: it had ended, changed or is gone). */
  readonly failedNow: boolean;
  /** The job's record as it is now; null when there is none. */
  readonly job: JobRecord | null;
}

/**
 * Fails a job from the Worker's side (its runner was lost, or no runner would take it): a
 * system line saying why and the terminal entry go to its stream, so viewers get `done`. The
 * end is a compare-and-set (one script): when the runner ended the job first, or the record
 * changed since it was read (the runner just claimed it), nothing is written and the stored
 * record is returned. The entry id is Redis's own (`*`), always after the stream's last entry.
 */
export function failJob(redis: Redis, jobId: string, reason: string): Promise<FailOutcome> {
  return endJob(redis, jobId, "failed", reason);
}

/**
 * Ends a job from the Worker's side with `status` and a system line (`reason`), as `failJob`
 * does; with `onlyWhile`, only while the job is in that status (a cancel of a queued job must
 * not end one a runner just claimed: then nothing is written and the current record returned).
 */
export async function endJob(
  redis: Redis,
  jobId: string,
  status: TerminalStatus,
  reason: string,
  onlyWhile?: JobStatus,
): Promise<FailOutcome> {
  const raw = await redis.get<string>(jobKey(jobId));
  if (raw === null) return { failedNow: false, job: null };
  const job = parseJobRecord(raw);
  if (isTerminalStatus(job.status)) return { failedNow: false, job };
  if (onlyWhile !== undefined && job.status !== onlyWhile) return { failedNow: false, job };
  const now = new Date();
  const failed: JobRecord = {
    ...job,
    status,
    finished_at: now.toISOString(),
    started_at: job.started_at ?? null,
  };
  const reply = await redis.createScript(END_JOB_LUA).exec(
    endKeys(jobId),
    endArgs({
      entryId: "*",
      finished: failed,
      now: now.getTime(),
      ttlSeconds: STREAM_TTL_SECONDS,
      expected: raw,
      fields: encodeEndFields(status, [
        { ts: now.toISOString(), source: "system", phase: "build", text: reason },
      ]),
    }),
  );
  const outcome = parseEndReply(reply);
  if (outcome.kind === "ended") return { failedNow: true, job: failed };
  const current = await redis.get<string>(jobKey(jobId));
  return { failedNow: false, job: current === null ? null : parseJobRecord(current) };
}
