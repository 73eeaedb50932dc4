import type { Redis } from "@upstash/redis";
import { parseArchiveState } from "../src/shared/archive-state.ts";
import { exponentialBackoff } from "../src/shared/backoff.ts";
import {
  compareEntryIds,
  encodeEndFields,
  encodeEntryFields,
  type LogRecord,
} from "../src/shared/entry.ts";
import type { TerminalStatus } from "../src/shared/job.ts";
import { archiveStateKey, logStreamKey } from "../src/shared/keys.ts";
import type { Logger as SharedLogger } from "../src/shared/log.ts";
import { createEntryIdClock } from "./entry-id-clock.ts";
import { createPendingLines } from "./pending-lines.ts";
import { createTrimLedger, type TrimPlan } from "./trim-ledger.ts";

/** What the writer and its helpers log through: the shared logger's warnings. */
export type Logger = Pick<SharedLogger, "warn">;

/**
 * What the writer counts for the runner's metrics. An option, not an import of the metrics
 * module: the writer also runs inside workerd (the live-push tests), where prom-client does not
 * load. Default: counts nothing.
 */
export interface WriterMetrics {
  written(lines: number, bytes: number): void;
  retried(): void;
  dropped(lines: number): void;
  /** Counts the bytes waiting in this writer until the returned function is called. */
  trackBuffered(probe: () => number): () => void;
}

const NO_METRICS: WriterMetrics = {
  written: () => undefined,
  retried: () => undefined,
  dropped: () => undefined,
  trackBuffered: () => () => undefined,
};

export interface RedisLogWriterOptions {
  /** An Upstash client made with `automaticDeserialization: false` and `retry: false`. */
  readonly redis: Redis;
  readonly jobId: string;
  /** How long the first line of a batch waits for company. A line reaches Redis within this plus one round trip. */
  readonly flushIntervalMs?: number;
  readonly maxEntryLines?: number;
  readonly maxEntryBytes?: number;
  readonly maxRequestBytes?: number;
  /** The live copy keeps about this many of the newest lines (the tail)... */
  readonly maxLines?: number;
  /** ...and this many of the first (the head); the middle leaves it once archived. */
  readonly headLines?: number;
  /** Past this many bytes the middle leaves the live copy archived or not (Upstash's 100 MB per key). */
  readonly maxLiveBytes?: number;
  readonly metrics?: WriterMetrics;
  /** How often, at most, the archive's progress is read (one GET in a write's pipeline) while the live copy is over head and tail. */
  readonly archiveCheckMs?: number;
  /**
   * Something archives the log while the build runs (the runner's archive calls to the Worker).
   * Then nothing leaves the live copy before the archive has it: at the byte cap the writer
   * holds the lines (the buffer fills and `waitForRoom()` pauses the build's output) and has
   * the archive write what it can, call after call, until the middle can go archived. Only
   * when the archive made no progress for `maxHoldMs` (120,000: it is down) do unarchived
   * lines go, with the notice, as without an archiver.
   */
  readonly archiver?: LiveArchiver;
  readonly ttlSeconds?: number;
  /** The TTL is refreshed by the first write and then at most this often. */
  readonly ttlRefreshMs?: number;
  /** Lines waiting for Redis beyond this many bytes are dropped, oldest first, and counted. */
  readonly maxBufferedBytes?: number;
  /**
   * While Redis answers but more than this many bytes wait for it, `waitForRoom()` holds the
   * build's output back (backpressure) instead of letting the buffer fill and drop lines.
   * Default: a quarter of `maxBufferedBytes`.
   */
  readonly pauseAboveBytes?: number;
  readonly retryInitialDelayMs?: number;
  readonly retryMaxDelayMs?: number;
  readonly logger?: Logger;
  readonly now?: () => number;
  /** Called after each successful request with what it wrote (the live push, metrics). */
  readonly onWritten?: (written: WrittenEntries) => void;
  /**
   * Told the line number of each step-marked line (src/shared/steps.ts) when its entry is
   * planned: the job record's steps say where each starts.
   */
  readonly onStepLine?: (record: LogRecord, line: number) => void;
  /** When the lines waiting go out; default: the first waits `flushIntervalMs` for company. */
  readonly flushTiming?: FlushTiming;
  /**
   * Writes the terminal entry, alone in its request, instead of a plain XADD: the runner ends
   * the job with it (entry and status in one script). It must throw Redis's "id too small"
   * error when the id is behind the stream's top, and be safe to call again with the same entry.
   */
  readonly writeEnd?: (entry: {
    readonly id: string;
    readonly fields: Record<string, string>;
  }) => Promise<void>;
}

/** Archives a job's log while it is written (the Worker, through the runner's calls). */
export interface LiveArchiver {
  /**
   * One archive call that starts now (after what was written so far): how far the archive
   * got (`through`: its last entry) and whether it could write more segments at once (`more`)
   * or another call holds the job (`busy`); null when the call failed.
   */
  archive(): Promise<{
    readonly through: string | null;
    readonly more: boolean;
    readonly busy: boolean;
  } | null>;
  /** Unarchived lines go (lost, announced) only after the archive made no progress this long. */
  readonly maxHoldMs?: number;
  /** Between calls that failed or found the job busy. */
  readonly retryMs?: number;
  /** How often a stuck archive is asked again, before unarchived lines go (5,000). */
  readonly stuckRetryMs?: number;
}

/** What one request wrote, in stream order. */
export interface WrittenEntries {
  readonly lines: number;
  readonly entries: readonly {
    readonly id: string;
    readonly fields: Readonly<Record<string, string>>;
  }[];
  /**
   * The stream entry right before the first of them ("0-0": none), as far as this writer knows
   * (it is the only writer while it holds the job's lease); null when it cannot tell.
   */
  readonly previousId: string | null;
  /** How long the request took. */
  readonly requestMs: number;
}

/** Decides how long the lines waiting may wait for more lines to share their request. */
export interface FlushTiming {
  lineAppended?(at: number): void;
  /** A batch of new lines goes out now (not a retry of one). */
  batchSent?(at: number): void;
  /**
   * How much longer the `pendingLines` lines waiting since `oldestAt` may wait; 0 or less
   * sends them now.
   */
  delayMs(oldestAt: number, now: number, pendingLines: number): number;
}

export interface WriterStats {
  /** HTTP requests sent to Upstash. */
  requests: number;
  /** Redis commands sent (Upstash bills each, also inside a pipeline). */
  commands: number;
  linesWritten: number;
  linesDropped: number;
  /** Lines Redis acknowledged and then lost (a restart without its data). */
  linesLost: number;
  failedRequests: number;
  /** Archive calls made while lines waited at the byte cap for the archive. */
  archiveCalls: number;
  /** How long lines waited at the byte cap for the archive, in all. */
  archiveHeldMs: number;
  /** Lines deleted from the live copy once archived, and of those, ones the archive lacked. */
  linesTrimmed: number;
  linesTrimmedUnarchived: number;
}

/**
 * Appends sanitized log records to the job's Redis Stream in batches, and never loses one
 * silently. One request is in flight at a time, so entries land in order. A failed request is
 * retried with backoff, with the same entry ids: each entry's id is chosen here, not by
 * Redis, so a retry of a request that had in fact succeeded is answered "id too small" and
 * recognised as already written instead of appending the lines twice.
 */
export interface RedisLogWriter {
  append(record: LogRecord): void;
  /** Resolves once every record appended so far is in Redis (or counted as dropped). */
  drain(): Promise<void>;
  /**
   * Ends the log: after every pending line, appends the terminal entry (`end=<status>`) so a
   * reader sees the end in the same read as the last lines. Lines appended later are refused.
   */
  end(status: TerminalStatus): Promise<void>;
  /**
   * Null when there is room for more lines; else a promise that resolves once there is. Room
   * is lacking only while Redis answers and is slower than the build: during an outage the
   * buffer takes lines (and past its bound drops the oldest, with a notice), since pausing the
   * build would not bring Redis back.
   */
  waitForRoom(): Promise<void> | null;
  /** Stops writing for good: lines waiting and later ones are discarded (the job ended elsewhere). */
  abandon(): void;
  readonly stats: Readonly<WriterStats>;
}

interface PlannedEntry {
  readonly id: string;
  readonly fields: Record<string, string>;
  readonly lines: number;
  /** What it weighs in the live copy (entryBytes), counted once when it is planned. */
  readonly bytes: number;
  readonly end?: true;
}

/** An entry to write; its id comes later or is replaced on a retry, its weight does not change. */
function plannedEntry(id: string, fields: Record<string, string>, lines: number): PlannedEntry {
  return { id, fields, lines, bytes: entryBytes(fields) };
}

interface Batch {
  readonly entries: PlannedEntry[];
  readonly expire: boolean;
  /** Archived middle entries to delete (XDEL) in the same request. */
  readonly trim: TrimPlan | null;
  /** Read the archive's progress (GET) in the same request. */
  readonly readArchive: boolean;
  /** The stream entry before this batch, as far as known (see WrittenEntries). */
  readonly previousId: string | null;
  attempts: number;
}

function mebibytes(bytes: number): string {
  const mib = bytes / (1024 * 1024);
  return `${Number.isInteger(mib) ? mib : mib.toFixed(1)} MiB`;
}

/** What an entry weighs in the live copy: its fields as Redis keeps them, in UTF-8. */
function entryBytes(fields: Record<string, string>): number {
  return Object.entries(fields).reduce(
    (sum, [name, value]) => sum + utf8Length(name) + utf8Length(value),
    0,
  );
}

/**
 * UTF-8 bytes of a string, without encoding it: the writer also runs in workerd, where
 * Buffer.byteLength is not there, and TextEncoder would copy every entry once more. A string's
 * `length` counts UTF-16 units: CJK text would weigh a third of what Redis holds.
 */
export function utf8Length(text: string): number {
  let bytes = text.length;
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (code < 0x80) continue;
    if (code < 0x800) bytes += 1;
    else if (code >= 0xd800 && code <= 0xdbff && i + 1 < text.length) {
      // A surrogate pair: two units, four bytes.
      bytes += 2;
      i += 1;
    } else bytes += 2;
  }
  return bytes;
}

// How far past its byte cap the live copy may go while the archive waits for the lines that
// complete its next segment: a segment (the Worker's ARCHIVE_SEGMENT_BYTES, 4 MiB) and a
// request (4 MiB), with room to spare; with the largest cap (76 MiB, worker-build-runner/
// config.ts) still under Upstash's 100 MB per key.
const ARCHIVE_SLACK_BYTES = 12 * 1024 * 1024;

// A stuck archive is asked again this often, before unarchived lines go.
const STUCK_RETRY_MS = 5_000;
// After the archive wrote all it could, the lines go until this many more are written (a tenth
// of a segment), and then it is asked again.
const CAUGHT_UP_LINES = 1_000;
const CAUGHT_UP_BYTES = 512 * 1024;

const DUPLICATE_ID_ERROR = /equal or smaller than the target stream top item/i;

/** The stream's top entry is newer than the ids we planned (another runner wrote to it). */
class StaleIdsError extends Error {
  override readonly name = "StaleIdsError";
  readonly missing: readonly PlannedEntry[];
  constructor(message: string, missing: readonly PlannedEntry[]) {
    super(message);
    this.missing = missing;
  }
}

/** Entry id -> its fields as `name=value` pairs in order, from a raw XRANGE reply. */
function decodeRawEntries(reply: unknown): Map<string, string> {
  const entries = new Map<string, string>();
  if (!Array.isArray(reply)) return entries;
  for (const item of reply) {
    if (!Array.isArray(item) || typeof item[0] !== "string" || !Array.isArray(item[1])) continue;
    entries.set(item[0], JSON.stringify(item[1]));
  }
  return entries;
}

/** The same pairs for fields we wrote (XADD keeps their order). */
function fieldsKey(fields: Record<string, string>): string {
  return JSON.stringify(Object.entries(fields).flat());
}
function positiveInteger(name: string, value: number): number {
  if (!Number.isInteger(value) || value < 1)
    throw new RangeError(`${name} must be a positive integer, got ${value}`);
  return value;
}

function shortError(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  // Upstash errors quote the whole command, lines and all: keep the log readable.
  const cut = message.indexOf(", command was:");
  return (cut === -1 ? message : message.slice(0, cut)).slice(0, 200);
}

export function createRedisLogWriter(options: RedisLogWriterOptions): RedisLogWriter {
  const redis = options.redis;
  const key = logStreamKey(options.jobId);
  const flushIntervalMs = options.flushIntervalMs ?? 30;
  const flushTiming: FlushTiming = options.flushTiming ?? {
    delayMs: (oldestAt, at) => oldestAt + flushIntervalMs - at,
  };
  const maxEntryLines = positiveInteger("maxEntryLines", options.maxEntryLines ?? 500);
  const maxEntryBytes = positiveInteger("maxEntryBytes", options.maxEntryBytes ?? 256 * 1024);
  const maxRequestBytes = positiveInteger(
    "maxRequestBytes",
    options.maxRequestBytes ?? 4 * 1024 * 1024,
  );
  const maxLines = positiveInteger("maxLines", options.maxLines ?? 50_000);
  const ttlSeconds = positiveInteger("ttlSeconds", options.ttlSeconds ?? 86_400);
  const ttlRefreshMs = options.ttlRefreshMs ?? 60_000;
  const maxBufferedBytes = positiveInteger(
    "maxBufferedBytes",
    options.maxBufferedBytes ?? 16 * 1024 * 1024,
  );
  const pauseAboveBytes = positiveInteger(
    "pauseAboveBytes",
    options.pauseAboveBytes ?? Math.floor(maxBufferedBytes / 4),
  );
  const retryInitialDelayMs = options.retryInitialDelayMs ?? 100;
  const retryMaxDelayMs = options.retryMaxDelayMs ?? 5_000;
  const logger = options.logger ?? console;
  const now = options.now ?? Date.now;

  const stats: WriterStats = {
    requests: 0,
    commands: 0,
    linesWritten: 0,
    linesDropped: 0,
    linesLost: 0,
    failedRequests: 0,
    archiveCalls: 0,
    archiveHeldMs: 0,
    linesTrimmed: 0,
    linesTrimmedUnarchived: 0,
  };
  const pending = createPendingLines({
    maxEntryLines,
    maxEntryBytes,
    maxRequestBytes,
    maxBufferedBytes,
  });
  // Until the end is written: a writer that is never ended (its job lost) stays counted, as
  // its lines stay in memory.
  const metrics = options.metrics ?? NO_METRICS;
  const untrackBuffer = metrics.trackBuffered(() => pending.bytes);
  const ids = createEntryIdClock(now);
  const headLines = positiveInteger("headLines", options.headLines ?? 1_000);
  const maxLiveBytes = positiveInteger("maxLiveBytes", options.maxLiveBytes ?? 64 * 1024 * 1024);
  const ledger = createTrimLedger({ headLines, tailLines: maxLines, maxLiveBytes });
  const archiveCheckMs = options.archiveCheckMs ?? 1_000;
  let lastArchiveCheckAt = -Infinity;
  const archiver = options.archiver;
  const archiveRetryMs = archiver?.retryMs ?? 250;
  const maxArchiveHoldMs = archiver?.maxHoldMs ?? 120_000;
  let archivedId: string | null = null;
  // When the archive last moved on.
  let archiveProgressAt = now();
  let holdSince: number | null = null;
  // The archive wrote every segment it could since the last write: the rest of the stream is
  // less than a segment, which only more lines complete. The next batch goes over the cap then
  // (by less than a segment and a request) rather than wait for what cannot come.
  let archiveCaughtUp = false;
  // The archive made no progress for maxHoldMs while lines waited: it is down. Lines go as
  // without an archiver (announced lost) until it moves again.
  let archiveStuck = false;
  let stuckProbeAt = -Infinity;
  // Lines were dropped while they waited for the archive (a sandbox that cannot pause its
  // output, E2B's, filled the buffer): the notice names the archive, not Redis.
  let droppedWhileHeld = false;
  // Written since the archive last said it had written all it could.
  let sinceCaughtUp = { lines: 0, bytes: 0 };
  const archivedThrough = (id: string): void => {
    if (archivedId === null || compareEntryIds(id, archivedId) > 0) {
      archivedId = id;
      archiveProgressAt = now();
      archiveStuck = false;
    }
    ledger.archivedThrough(id);
  };
  // Whether the lines waiting must wait for the archive: writing them would push unarchived
  // lines out of the live copy (its byte cap), and the archive has not been stuck for long.
  const waitingForArchive = (): boolean => {
    if (archiver === undefined || pending.count === 0) return false;
    // Caught up, the archive waits for lines that complete its next segment; past the cap by
    // more than a segment and a request, it is wrong about that, and the lines wait again.
    if (archiveCaughtUp && ledger.liveBytes <= maxLiveBytes + ARCHIVE_SLACK_BYTES) return false;
    const plan = ledger.planTrim(pending.count, Math.min(pending.bytes, maxRequestBytes));
    if (plan === null || plan.unarchivedLines === 0) return false;
    // Stuck, the archive is asked again now and then (one call, not a hold): once it answers,
    // nothing unarchived goes any more.
    if (archiveStuck) {
      if (now() - stuckProbeAt < (archiver.stuckRetryMs ?? STUCK_RETRY_MS)) return false;
      stuckProbeAt = now();
      return true;
    }
    if (holdSince !== null && now() - Math.max(archiveProgressAt, holdSince) >= maxArchiveHoldMs) {
      archiveStuck = true;
      logger.warn(
        `build-log-stream: job ${options.jobId}: the archive made no progress for ${maxArchiveHoldMs} ms; lines it lacks leave the live copy at its byte cap (announced as lost)`,
      );
      return false;
    }
    return true;
  };
  // The line number of the next line written: each entry carries its first (`n`), so a reader
  // knows exactly what it did not get.
  let nextLine = 0;
  let inflight: Batch | null = null;
  let running = false;
  let timer: ReturnType<typeof setTimeout> | null = null;
  let timerAt = 0;
  let topKnown = false;
  // The last entry known to be in the stream (ours, or the top read): the next batch's previous.
  let lastId: string | null = null;
  // When the oldest line still waiting arrived; null when none waits.
  let oldestPendingAt: number | null = null;
  // drain() or end() asked for everything now, whatever the flush timing says.
  let flushAll = false;
  let lastExpireAt = -Infinity;
  let trimAnnounced = false;
  let drainWaiters: (() => void)[] = [];
  let endStatus: TerminalStatus | null = null;
  let endPlanned = false;
  let abandoned = false;
  // Set by a failed request, cleared by the next that succeeds.
  let unreachable = false;
  // A request failed since the last drop notice: the drops are the outage's.
  let outageSinceNotice = false;
  let roomWaiters: (() => void)[] = [];
  const hasRoom = (): boolean =>
    pending.bytes <= pauseAboveBytes || unreachable || abandoned || endStatus !== null;
  const wakeIfRoom = (): void => {
    if (roomWaiters.length === 0 || !hasRoom()) return;
    const waiters = roomWaiters;
    roomWaiters = [];
    for (const resolve of waiters) resolve();
  };
  const work = (): boolean =>
    !abandoned &&
    (inflight !== null ||
      pending.count > 0 ||
      pending.unannouncedDrops > 0 ||
      (endStatus !== null && !endPlanned));
  // Whether the run loop should send now rather than let the lines waiting wait for company.
  const due = (): boolean =>
    flushAll ||
    inflight !== null ||
    endStatus !== null ||
    pending.unannouncedDrops > 0 ||
    pending.count >= maxEntryLines ||
    (pending.count > 0 &&
      (oldestPendingAt === null ||
        flushTiming.delayMs(oldestPendingAt, now(), pending.count) <= 0));

  const systemRecord = (text: string, phase: string): LogRecord => ({
    ts: new Date(now()).toISOString(),
    source: "system",
    phase,
    text,
  });

  const planBatch = (): Batch => {
    const dropped = pending.takeUnannouncedDrops();
    if (dropped > 0) {
      pending.pushFront(
        systemRecord(
          outageSinceNotice || unreachable
            ? `${dropped} log lines were dropped here: Redis was unreachable for too long to keep them.`
            : droppedWhileHeld
              ? `${dropped} log lines were dropped here: the build printed them faster than the archive took them (the live copy was at its byte cap).`
              : `${dropped} log lines were dropped here: the build printed them faster than Redis took them.`,
          pending.firstPhase ?? "build",
        ),
      );
      outageSinceNotice = unreachable;
      droppedWhileHeld = false;
    }
    const taken = pending.takeEntries();
    wakeIfRoom();
    const entries: PlannedEntry[] = taken.map((records) => {
      if (options.onStepLine)
        for (let i = 0; i < records.length; i++) {
          const record = records[i];
          if (record?.step !== undefined) options.onStepLine(record, nextLine + i);
        }
      const entry = plannedEntry(ids.next(), encodeEntryFields(records, nextLine), records.length);
      nextLine += records.length;
      return entry;
    });
    const endAlone = options.writeEnd !== undefined;
    if (
      pending.count === 0 &&
      endStatus !== null &&
      !endPlanned &&
      !(endAlone && entries.length > 0)
    ) {
      entries.push({
        ...plannedEntry(ids.next(), encodeEndFields(endStatus, [], nextLine), 0),
        end: true,
      });
      endPlanned = true;
    }
    // The live copy keeps its head and tail; the middle goes once the archive has it.
    const batchLines = entries.reduce((sum, entry) => sum + entry.lines, 0);
    const batchBytes = entries.reduce((sum, entry) => sum + entry.bytes, 0);
    // With an archiver, nothing unarchived goes unless it is stuck: waitingForArchive() held
    // the lines until the archive caught up (a batch may take the live copy one request past the
    // cap, well under Upstash's limit).
    const trim = ledger.planTrim(batchLines, batchBytes, archiver !== undefined && !archiveStuck);
    const readArchive = ledger.overKeep && now() - lastArchiveCheckAt >= archiveCheckMs;
    if (readArchive) lastArchiveCheckAt = now();
    const expire = now() - lastExpireAt >= ttlRefreshMs;
    // Lines left over (the request was full) are due at once: their oldest is as old.
    if (pending.count === 0) oldestPendingAt = null;
    return { entries, expire, trim, readArchive, previousId: lastId, attempts: 0 };
  };

  // One archive call while lines wait for it (no Redis command of the writer's own).
  const archiveNow = async (live: LiveArchiver): Promise<void> => {
    stats.archiveCalls += 1;
    const progress = await live.archive();
    if (progress?.through) archivedThrough(progress.through);
    if (progress !== null && !progress.busy) {
      // It answers: it works again, whether or not it had anything to write.
      if (archiveStuck) archiveProgressAt = now();
      archiveStuck = false;
    }
    if (progress === null || progress.busy) await sleep(archiveRetryMs);
    else if (!progress.more) {
      archiveCaughtUp = true;
      sinceCaughtUp = { lines: 0, bytes: 0 };
    }
  };

  const readStreamTop = async (): Promise<void> => {
    stats.requests += 1;
    stats.commands += 1;
    const reply: unknown = await redis.xrevrange(key, "+", "-", 1);
    const top = Array.isArray(reply) && Array.isArray(reply[0]) ? reply[0][0] : undefined;
    if (typeof top === "string") ids.advancePast(top);
    lastId = typeof top === "string" ? top : "0-0";
    topKnown = true;
    noticeLostEntries(typeof top === "string" ? top : null);
  };

  // After Redis failed to answer, its data may be older than what it had acknowledged (a
  // restart that lost its last second, or everything): entries this writer wrote are missing
  // from the stream's top. The lines are gone for good; the log says how many, where they were.
  const noticeLostEntries = (top: string | null): void => {
    const newest = ledger.newestId;
    if (newest === undefined || (top !== null && compareEntryIds(top, newest) >= 0)) return;
    const lost = ledger.forgetAfter(top);
    if (lost === 0) return;
    stats.linesLost += lost;
    lastExpireAt = -Infinity;
    logger.warn(
      `build-log-stream: Redis lost ${lost} lines of job ${options.jobId} it had acknowledged (its stream ${top === null ? "is gone" : `ends at ${top}`})`,
    );
    const notice = systemRecord(
      `${lost} log lines were lost here: Redis lost them after storing them (it restarted without its data).`,
      pending.firstPhase ?? "build",
    );
    if (inflight === null) {
      pending.pushFront(notice);
      return;
    }
    // The batch being retried is not in the stream (its top is older than what came before
    // it): the notice goes first, and every entry gets a fresh id after the top.
    // Without a line number: its lines' numbers were the lost ones; readers count on from the
    // next numbered entry and show this line as it is.
    const noticeEntry = plannedEntry("", encodeEntryFields([notice]), 1);
    inflight = {
      entries: [noticeEntry, ...inflight.entries].map((entry) => ({ ...entry, id: ids.next() })),
      expire: true,
      // No trim and no archive read in a retry that re-ids the batch: the next batch does both.
      trim: null,
      readArchive: false,
      previousId: lastId,
      attempts: 0,
    };
  };

  // Which of `entries` are already in the stream with exactly this content: the ones an
  // earlier attempt wrote although its answer was lost.
  const alreadyStored = async (entries: readonly PlannedEntry[]): Promise<Set<string>> => {
    const first = entries[0];
    const last = entries.at(-1);
    if (!first || !last) return new Set();
    stats.requests += 1;
    stats.commands += 1;
    const stored = decodeRawEntries(await redis.xrange(key, first.id, last.id));
    return new Set(
      entries
        .filter((entry) => stored.get(entry.id) === fieldsKey(entry.fields))
        .map((entry) => entry.id),
    );
  };

  const sendEnd = async (
    entry: PlannedEntry,
    writeEnd: NonNullable<RedisLogWriterOptions["writeEnd"]>,
  ): Promise<void> => {
    stats.requests += 1;
    stats.commands += 1;
    try {
      await writeEnd(entry);
    } catch (error) {
      if (!DUPLICATE_ID_ERROR.test(error instanceof Error ? error.message : String(error)))
        throw error;
      throw new StaleIdsError(`the stream ${key} already holds entries newer than ${entry.id}`, [
        entry,
      ]);
    }
  };

  const send = async (batch: Batch): Promise<void> => {
    const last = batch.entries.at(-1);
    if (options.writeEnd && last?.end) {
      // The terminal entry goes alone through writeEnd, after the entries before it.
      const before = batch.entries.slice(0, -1);
      if (before.length > 0) await sendEntries({ ...batch, entries: before });
      return sendEnd(last, options.writeEnd);
    }
    return sendEntries(batch);
  };

  const sendEntries = async (batch: Batch): Promise<void> => {
    const pipeline = redis.pipeline();
    for (const entry of batch.entries) pipeline.xadd(key, entry.id, entry.fields);
    // After the XADDs, then: a retry deletes nothing twice (XDEL of a gone id is a no-op).
    const extra: string[] = [];
    if (batch.trim !== null) {
      pipeline.xdel(key, [...batch.trim.ids]);
      extra.push("XDEL");
    }
    if (batch.expire) {
      pipeline.expire(key, ttlSeconds);
      extra.push("EXPIRE");
    }
    if (batch.readArchive) {
      pipeline.get(archiveStateKey(options.jobId));
      extra.push("GET");
    }
    stats.requests += 1;
    stats.commands += batch.entries.length + extra.length;
    batch.attempts += 1;
    const results = await pipeline.exec({ keepErrors: true });
    const refused: PlannedEntry[] = [];
    results.forEach((result, i) => {
      const entry = batch.entries[i];
      const command = extra[i - batch.entries.length];
      if (command === "GET" && !result.error) {
        const state = parseArchiveState(result.result);
        if (state?.through) archivedThrough(state.through);
      }
      if (!result.error) return;
      if (entry && DUPLICATE_ID_ERROR.test(result.error)) refused.push(entry);
      else throw new Error(`Redis refused ${entry ? "XADD" : command}: ${result.error}`);
    });
    if (refused.length === 0) return;
    // "id too small": either an earlier attempt of this batch got in (then the entry is there,
    // identical, and all is well) or another runner wrote ahead of our clock.
    const stored = await alreadyStored(refused);
    const missing = refused.filter((entry) => !stored.has(entry.id));
    if (missing.length > 0)
      throw new StaleIdsError(
        `the stream ${key} already holds entries newer than ${missing[0]?.id}`,
        missing,
      );
  };

  const commit = (batch: Batch, requestMs: number): void => {
    if (batch.expire) lastExpireAt = now();
    let written = 0;
    for (const entry of batch.entries) {
      ledger.record(entry.id, entry.lines, entry.bytes);
      written += entry.lines;
    }
    stats.linesWritten += written;
    const writtenBytes = batch.entries.reduce((sum, entry) => sum + entry.bytes, 0);
    // New lines may complete the segment the archive waited for: worth a call once they are
    // a good part of one (not on every batch, which a small cap would otherwise cost).
    sinceCaughtUp = {
      lines: sinceCaughtUp.lines + written,
      bytes: sinceCaughtUp.bytes + writtenBytes,
    };
    if (sinceCaughtUp.lines >= CAUGHT_UP_LINES || sinceCaughtUp.bytes >= CAUGHT_UP_BYTES)
      archiveCaughtUp = false;
    metrics.written(written, writtenBytes);
    lastId = batch.entries.at(-1)?.id ?? lastId;
    options.onWritten?.({
      lines: written,
      entries: batch.entries,
      previousId: batch.previousId,
      requestMs,
    });
    const trim = batch.trim;
    if (trim !== null) {
      ledger.trimmed(trim);
      stats.linesTrimmed += trim.lines;
      stats.linesTrimmedUnarchived += trim.unarchivedLines;
      // Once the end is written nothing may follow it: a notice then would never be seen.
      if (!endPlanned && !trimAnnounced && trim.unarchivedLines < trim.lines) {
        trimAnnounced = true;
        oldestPendingAt ??= now();
        stats.linesDropped += pending.push(
          systemRecord(
            `This log is over what its live copy keeps (the first ${headLines} lines and the newest ${maxLines}, about ${mebibytes(maxLiveBytes)} in all): every line is in the archive, and history and the download read it from there.`,
            pending.firstPhase ?? "build",
          ),
        );
      }
      if (!endPlanned && trim.unarchivedLines > 0) {
        logger.warn(
          `build-log-stream: job ${options.jobId}: ${trim.unarchivedLines} lines left the live copy before the archive had them`,
        );
        oldestPendingAt ??= now();
        stats.linesDropped += pending.push(
          systemRecord(
            `${trim.unarchivedLines} log lines left the live copy before the archive had them (it fell behind): they are lost.`,
            pending.firstPhase ?? "build",
          ),
        );
      }
    }
  };

  const backoff = exponentialBackoff({
    initial: retryInitialDelayMs,
    max: retryMaxDelayMs,
    jitter: 0.2,
  });

  const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

  const run = async (): Promise<void> => {
    if (running) return;
    running = true;
    let failures = 0;
    try {
      while (work() && due()) {
        try {
          if (!topKnown) await readStreamTop();
          if (archiver !== undefined && inflight === null && waitingForArchive()) {
            if (holdSince === null) {
              holdSince = now();
              if (stats.archiveCalls === 0)
                logger.warn(
                  `build-log-stream: job ${options.jobId}: the live copy is at its byte cap; the build waits for the archive whenever it is behind`,
                );
            }
            await archiveNow(archiver);
            continue;
          }
          if (holdSince !== null) {
            stats.archiveHeldMs += now() - holdSince;
            holdSince = null;
          }
          if (inflight === null) {
            inflight = planBatch();
            flushTiming.batchSent?.(now());
          }
          const batch = inflight;
          const sentAt = now();
          await send(batch);
          if (abandoned) break;
          commit(batch, now() - sentAt);
          inflight = null;
          unreachable = false;
          if (pending.unannouncedDrops === 0) outageSinceNotice = false;
          if (failures > 0) {
            logger.warn(
              `build-log-stream: Redis is back for job ${options.jobId} after ${failures} failed attempts; ${stats.linesLost + stats.linesDropped === 0 ? "no line was lost" : `${stats.linesLost} lines lost with Redis and ${stats.linesDropped} dropped so far`}`,
            );
            failures = 0;
          }
        } catch (error) {
          if (error instanceof StaleIdsError && inflight !== null) {
            // Not a Redis fault: send what is missing again, with ids after the stream's top.
            logger.warn(`build-log-stream: ${error.message}; continuing after its last entry`);
            const missing = new Set(error.missing);
            // What did get in is counted (ledger, stats) before the rest goes again. Another
            // writer's entries may sit between them: their previous entry is unknown.
            commit(
              {
                entries: inflight.entries.filter((entry) => !missing.has(entry)),
                expire: inflight.expire,
                trim: null,
                readArchive: false,
                previousId: null,
                attempts: 0,
              },
              0,
            );
            lastId = null;
            await readStreamTop().catch(() => undefined);
            inflight = {
              entries: inflight.entries
                .filter((entry) => missing.has(entry))
                .map((entry) => ({ ...entry, id: ids.next() })),
              expire: inflight.expire,
              trim: null,
              readArchive: false,
              previousId: lastId,
              attempts: 0,
            };
            continue;
          }
          failures += 1;
          metrics.retried();
          stats.failedRequests += 1;
          unreachable = true;
          outageSinceNotice = true;
          wakeIfRoom();
          // Check the stream's top before the next write: Redis may have restarted.
          topKnown = false;
          const delay = backoff(failures);
          if (failures === 1 || Number.isInteger(Math.log2(failures))) {
            logger.warn(
              `build-log-stream: writing the log of job ${options.jobId} to Redis failed (attempt ${failures}, ${pending.count + (inflight?.entries.reduce((n, e) => n + e.lines, 0) ?? 0)} lines waiting); retrying in ${delay} ms: ${shortError(error)}`,
            );
          }
          await sleep(delay);
        }
      }
    } finally {
      running = false;
      wakeIfRoom();
      if (work()) {
        // Lines that are not due yet wait for company; drain() callers wait with them.
        schedule();
      } else {
        flushAll = false;
        const waiters = drainWaiters;
        drainWaiters = [];
        for (const resolve of waiters) resolve();
      }
    }
  };

  // Runs the loop when the lines waiting are due. While a request is in flight the loop itself
  // looks again when it is answered.
  const schedule = (): void => {
    if (running) return;
    const at = now();
    const delay = due()
      ? 0
      : Math.max(0, flushTiming.delayMs(oldestPendingAt ?? at, at, pending.count));
    if (timer !== null) {
      if (timerAt <= at + delay) return;
      clearTimeout(timer);
    }
    timerAt = at + delay;
    timer = setTimeout(() => {
      timer = null;
      void run();
    }, delay);
  };

  return {
    waitForRoom() {
      if (hasRoom()) return null;
      return new Promise<void>((resolve) => roomWaiters.push(resolve));
    },
    abandon() {
      abandoned = true;
      endStatus ??= "failed";
      endPlanned = true;
      pending.takeUnannouncedDrops();
      while (pending.count > 0) pending.takeEntries();
      inflight = null;
      wakeIfRoom();
    },
    append(record) {
      if (abandoned) return;
      if (endStatus !== null) {
        logger.warn(
          `build-log-stream: a line for job ${options.jobId} came after its end and was not written`,
        );
        return;
      }
      const at = now();
      oldestPendingAt ??= at;
      flushTiming.lineAppended?.(at);
      const dropped = pending.push(record);
      stats.linesDropped += dropped;
      if (dropped > 0) metrics.dropped(dropped);
      if (dropped > 0 && holdSince !== null) droppedWhileHeld = true;
      if (dropped > 0 && dropped === pending.unannouncedDrops) {
        logger.warn(
          `build-log-stream: Redis has not taken the log for a while; dropping the oldest unsent lines of job ${options.jobId}`,
        );
      }
      schedule();
    },
    end(status) {
      endStatus ??= status;
      wakeIfRoom();
      return this.drain().finally(untrackBuffer);
    },
    drain() {
      if (!running && !work()) return Promise.resolve();
      if (timer !== null) {
        clearTimeout(timer);
        timer = null;
      }
      flushAll = true;
      const done = new Promise<void>((resolve) => drainWaiters.push(resolve));
      void run();
      return done;
    },
    stats,
  };
}
