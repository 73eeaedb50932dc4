import type { Redis } from "@upstash/redis/cloudflare";
import { workerConfig } from "../config.ts";
import { archiveRecord, DEFAULT_RECORD_TTL_SECONDS, recordSecondsLeft } from "../jobs/expiry.ts";
import type { ArchiveState } from "../shared/archive-state.ts";
import type { StreamEntry } from "../shared/entry.ts";
import { isTerminalStatus, parseJobRecord, type TerminalStatus } from "../shared/job.ts";
import {
  archiveLockKey,
  archiveStateKey,
  jobKey,
  logStreamKey,
  UNARCHIVED_JOBS_KEY,
} from "../shared/keys.ts";
import type { ArchiveStore } from "./archive-store.ts";
import { readIndex, readRedisEntries } from "./reader.ts";
import {
  type ArchiveIndex,
  DEFAULT_SEGMENT_LIMITS,
  emptyIndex,
  encodeSegment,
  entryNdjson,
  indexKey,
  type SegmentLimits,
  segmentKey,
} from "./segments.ts";

export interface ArchiveOptions extends Partial<SegmentLimits> {
  /**
   * Segments one call writes at most. Each costs about 4 Redis reads, 2 puts and 1 SET: a
   * handful of subrequests, so a call stays far inside a Worker's budget; callers call again
   * while `more` is set.
   */
  readonly maxSegments?: number;
  /** Redis's copy of the record expires this long after the job's end, once archived. */
  readonly recordTtl?: number;
}

export interface ArchiveProgress {
  readonly through: string | null;
  readonly lines: number;
  readonly segments: number;
  readonly complete: boolean;
  /** Complete segments are waiting: call again. */
  readonly more: boolean;
  /** Another call holds the job's archive lock; nothing was written by this one. */
  readonly busy: boolean;
  /** Segments this call wrote. */
  readonly written: number;
}

// Entries per XRANGE while archiving: an entry holds at most 256 KiB of lines, so a read stays
// well under Upstash's 10 MB per request whatever the build printed.
const ENTRIES_PER_READ = 32;
const LOCK_MS = 60_000;
// Redis's copy of the state outlives the log's 24 hours by a day: the runner needs it only
// while it writes, the archive's index is what lasts.
const STATE_TTL_SECONDS = 2 * 86_400;

function progressOf(index: ArchiveIndex, more: boolean, busy: boolean, written: number) {
  return {
    through: index.through,
    lines: index.lines,
    segments: index.segments.length,
    complete: index.end !== null,
    more,
    busy,
    written,
  } satisfies ArchiveProgress;
}

/**
 * Writes the job's next complete segments from its Redis Stream, as the build runs: a segment
 * is complete once it holds `segmentLines` lines or `segmentBytes` bytes, or it holds the
 * terminal entry. Each segment is put before the index names it, and the index before Redis's
 * state says so, so whatever fails the archive never claims a line it does not hold (the
 * runner trims only below the state's `through`). Returns null for a job that does not exist.
 *
 * Memory is one segment of entries at most (plus one read), whatever the log's size.
 */
export async function archiveLog(
  redis: Redis,
  store: ArchiveStore,
  jobId: string,
  options: ArchiveOptions = {},
): Promise<ArchiveProgress | null> {
  const limits: SegmentLimits = { ...DEFAULT_SEGMENT_LIMITS, ...options };
  const maxSegments = options.maxSegments ?? 8;
  const recordTtl = options.recordTtl ?? DEFAULT_RECORD_TTL_SECONDS;
  const token = crypto.randomUUID();
  const p = redis.pipeline();
  p.set(archiveLockKey(jobId), token, { nx: true, px: LOCK_MS });
  p.get(jobKey(jobId));
  const [locked, rawJob] = (await p.exec()) as [string | null, string | null];
  if (rawJob === null) {
    // Nothing to archive any more: leave the sweep's list, or it would retry this forever.
    const cleanup = redis.pipeline();
    cleanup.zrem(UNARCHIVED_JOBS_KEY, jobId);
    if (locked !== null) cleanup.del(archiveLockKey(jobId));
    await cleanup.exec();
    return null;
  }
  if (locked === null) {
    const index = (await readIndex(store, jobId)) ?? emptyIndex();
    return progressOf(index, true, true, 0);
  }
  try {
    return await writeSegments(redis, store, jobId, rawJob, limits, maxSegments, recordTtl);
  } finally {
    await redis.del(archiveLockKey(jobId));
  }
}

async function writeSegments(
  redis: Redis,
  store: ArchiveStore,
  jobId: string,
  rawJob: string,
  limits: SegmentLimits,
  maxSegments: number,
  recordTtl: number,
): Promise<ArchiveProgress> {
  const job = parseJobRecord(rawJob);
  const ended = isTerminalStatus(job.status) ? job.status : null;
  let index = (await readIndex(store, jobId)) ?? emptyIndex();
  if (index.end !== null) {
    await markArchived(redis, store, jobId, recordTtl);
    return progressOf(index, false, false, 0);
  }
  const key = logStreamKey(jobId);
  let written = 0;
  // Entries read past the last segment's cut: the next segment starts with them.
  let carried: StreamEntry[] = [];
  let exhausted = false;
  while (written < maxSegments) {
    const segment: StreamEntry[] = [];
    let lines = 0;
    let bytes = 0;
    let complete = false;
    let end: TerminalStatus | null = null;
    for (;;) {
      if (carried.length === 0) {
        if (exhausted) break;
        const from = segment.at(-1)?.id ?? index.through;
        const read = await readRedisEntries(
          redis,
          key,
          from === null ? "-" : `(${from}`,
          "+",
          ENTRIES_PER_READ,
        );
        if (read.length < ENTRIES_PER_READ) exhausted = true;
        carried = read;
        if (carried.length === 0) break;
      }
      const entry = carried.shift();
      if (entry === undefined) break;
      segment.push(entry);
      lines += entry.lines.length;
      bytes += entryNdjson(entry).length;
      if (entry.end !== undefined) {
        end = entry.end;
        complete = true;
        break;
      }
      if (lines >= limits.segmentLines || bytes >= limits.segmentBytes) {
        complete = true;
        break;
      }
    }
    // A job that ended without a terminal entry in its stream (lost with Redis, or the stream
    // expired): what is there is all there will be.
    if (!complete && exhausted && carried.length === 0 && ended !== null) {
      end = ended;
      complete = true;
      const last = segment.at(-1);
      if (last !== undefined) segment[segment.length - 1] = { ...last, end: ended };
    }
    if (!complete) break;
    index = await putSegment(store, jobId, index, segment, end, limits);
    written += 1;
    await saveState(redis, jobId, index);
    if (index.end !== null) {
      await markArchived(redis, store, jobId, recordTtl);
      break;
    }
  }
  const more = index.end === null && (carried.length > 0 || !exhausted);
  return progressOf(index, more, false, written);
}

async function putSegment(
  store: ArchiveStore,
  jobId: string,
  index: ArchiveIndex,
  entries: readonly StreamEntry[],
  end: TerminalStatus | null,
  limits: SegmentLimits,
): Promise<ArchiveIndex> {
  const seq = index.segments.length;
  const first = entries[0];
  const last = entries.at(-1);
  let next = index;
  if (first !== undefined && last !== undefined) {
    const encoded = await encodeSegment(entries, first.firstLine ?? index.nextLine, limits);
    const key = segmentKey(jobId, seq);
    await store.put(key, encoded.body, "application/gzip");
    const lines = entries.reduce((sum, entry) => sum + entry.lines.length, 0);
    next = {
      ...index,
      through: last.id,
      lines: index.lines + lines,
      nextLine: encoded.nextLine,
      segments: [
        ...index.segments,
        {
          key,
          from: first.id,
          to: last.id,
          n: encoded.blocks[0]?.n ?? index.nextLine,
          lines,
          bytes: encoded.body.byteLength,
          blocks: encoded.blocks,
        },
      ],
    };
  }
  if (end !== null) next = { ...next, end };
  await store.put(
    indexKey(jobId),
    new TextEncoder().encode(JSON.stringify(next)),
    "application/json",
  );
  return next;
}

async function saveState(redis: Redis, jobId: string, index: ArchiveIndex): Promise<void> {
  const state: ArchiveState = {
    through: index.through,
    lines: index.lines,
    segments: index.segments.length,
    complete: index.end !== null,
  };
  await redis.set(archiveStateKey(jobId), JSON.stringify(state), { ex: STATE_TTL_SECONDS });
}

/** Marks the job archived once its record says it ended (read again: the runner may just have). */
async function markArchived(
  redis: Redis,
  store: ArchiveStore,
  jobId: string,
  recordTtl: number,
): Promise<void> {
  const raw = await redis.get<string>(jobKey(jobId));
  if (raw === null) return;
  const job = parseJobRecord(raw);
  if (!isTerminalStatus(job.status)) return;
  const p = redis.pipeline();
  if (!job.archived_at) {
    const archived = { ...job, archived_at: new Date().toISOString() };
    // The record's copy goes to the archive first: only then may Redis's copy expire.
    await archiveRecord(store, archived);
    p.set(jobKey(jobId), JSON.stringify(archived), {
      ex: recordSecondsLeft(archived, recordTtl),
    });
  }
  p.zrem(UNARCHIVED_JOBS_KEY, jobId);
  await p.exec();
}

/** Segment sizes from the Worker's vars (ARCHIVE_SEGMENT_LINES, ARCHIVE_SEGMENT_BYTES; src/config.ts), else the defaults. */
export function archiveOptionsFromEnv(env: Env): ArchiveOptions {
  const { segmentLines, segmentBytes } = workerConfig(env).archive;
  return {
    ...(segmentLines === undefined ? {} : { segmentLines }),
    ...(segmentBytes === undefined ? {} : { segmentBytes }),
  };
}
