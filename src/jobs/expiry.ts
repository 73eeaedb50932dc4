import { workerConfig } from "../config.ts";
import type { ArchiveStore } from "../log/archive-store.ts";
import { type JobRecord, jobRecordSchema } from "../shared/job.ts";

/** How long an ended job's record stays in Redis by default, counted from its end. */
export const DEFAULT_RECORD_TTL_SECONDS = 7 * 86_400;

/** Where the archive keeps the job's final record, beside its log. */
export function archivedRecordKey(jobId: string): string {
  return `build-logs/${jobId}/job.json`;
}

/**
 * The seconds an ended job's record has left in Redis: `ttlSeconds` after its end, at least 1
 * (Redis's EX takes no 0), so a record archived late still expires on time.
 */
export function recordSecondsLeft(job: JobRecord, ttlSeconds: number, now = Date.now()): number {
  const ended = Date.parse(job.finished_at ?? "") || now;
  return Math.max(1, Math.ceil((ended + ttlSeconds * 1000 - now) / 1000));
}

/** Keeps the final record beside the archived log, where it outlives Redis's copy. */
export async function archiveRecord(store: ArchiveStore, job: JobRecord): Promise<void> {
  await store.put(
    archivedRecordKey(job.id),
    new TextEncoder().encode(JSON.stringify(job)),
    "application/json",
  );
}

/**
 * The record of a job whose Redis copy expired, from the archive; null when it was never
 * archived. Its owner reads it, its history and its log as before: they are all archived.
 */
export async function readArchivedRecord(
  store: ArchiveStore,
  jobId: string,
): Promise<JobRecord | null> {
  const bytes = await store.get(archivedRecordKey(jobId));
  if (bytes === null) return null;
  const parsed = jobRecordSchema.safeParse(JSON.parse(new TextDecoder().decode(bytes)));
  return parsed.success && parsed.data.id === jobId ? parsed.data : null;
}

/** JOB_RECORD_TTL_SECONDS (src/config.ts). */
export function recordTtlSeconds(env: Env): number {
  return workerConfig(env).archive.recordTtl;
}
