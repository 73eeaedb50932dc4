import type { Redis } from "@upstash/redis/cloudflare";
import {
  type Cursor,
  compareEntryIds,
  decodeStreamReply,
  nextLineAfter,
  type StreamEntry,
} from "../shared/entry.ts";
import { logStreamKey } from "../shared/keys.ts";
import type { ArchiveStore } from "./archive-store.ts";
import {
  type ArchiveBlock,
  type ArchiveIndex,
  archiveIndexSchema,
  decodeBlock,
  gunzip,
  indexKey,
  legacyArchiveKey,
} from "./segments.ts";

/**
 * The one log reader. Every reader of a job's log (history pages both ways, the text download,
 * the Durable Object's catch-up and tail, the archiver) goes through here: Redis where it holds
 * the range, else the archive's segments through their index, a block at a time by ranged
 * reads. Holes are found from the entries' line numbers (`n`): a range that left the live copy
 * is filled from the archive and announced (`where: "archive"`); lines that are nowhere are
 * announced with their count (`where: "lost"`). Nothing is skipped in silence.
 *
 * Memory is one Redis read plus one archive block at a time, whatever the size of the log.
 */

export interface LogGap {
  /** How many lines, when the line numbers tell; null when they do not. */
  readonly lines: number | null;
  /** The archive has them (and serves them right after), or no one has them. */
  readonly where: "archive" | "lost";
}

export type LogItem =
  | { readonly kind: "entry"; readonly entry: StreamEntry }
  | { readonly kind: "gap"; readonly gap: LogGap };

export async function readRedisEntries(
  redis: Redis,
  key: string,
  start: string,
  end: string,
  count: number,
): Promise<StreamEntry[]> {
  return decodeStreamReply(await redis.xrange(key, start, end, count));
}

/** The job's archive index; null when it has none (or only a legacy whole-object archive). */
export async function readIndex(store: ArchiveStore, jobId: string): Promise<ArchiveIndex | null> {
  const bytes = await store.get(indexKey(jobId));
  if (bytes === null) return null;
  return archiveIndexSchema.parse(JSON.parse(new TextDecoder().decode(bytes)));
}

interface LocatedBlock {
  readonly key: string;
  readonly block: ArchiveBlock;
}

/** The archive of one job, read a block at a time. */
export class ArchiveView {
  readonly index: ArchiveIndex | null;
  private readonly store: ArchiveStore;
  private readonly blocks: readonly LocatedBlock[];
  private readonly legacyKey: string | null;

  private constructor(
    index: ArchiveIndex | null,
    store: ArchiveStore,
    blocks: readonly LocatedBlock[],
    legacyKey: string | null,
  ) {
    this.index = index;
    this.store = store;
    this.blocks = blocks;
    this.legacyKey = legacyKey;
  }

  static async open(store: ArchiveStore, jobId: string): Promise<ArchiveView | null> {
    const index = await readIndex(store, jobId);
    if (index !== null) {
      const blocks = index.segments.flatMap((segment) =>
        segment.blocks.map((block) => ({ key: segment.key, block })),
      );
      return new ArchiveView(index, store, blocks, null);
    }
    return new ArchiveView(null, store, [], legacyArchiveKey(jobId));
  }

  private legacy: StreamEntry[] | null = null;

  private async blockEntries(located: LocatedBlock): Promise<StreamEntry[]> {
    const { block, key } = located;
    const bytes = await this.store.getRange(key, block.offset, block.length);
    if (bytes === null) throw new Error(`archive segment ${key} is missing`);
    return decodeBlock(await gunzip(bytes), block.n);
  }

  /** Archives written before segments are one object: read whole, once (they held 50,000 lines at most). */
  private async legacyEntries(): Promise<StreamEntry[]> {
    if (this.legacy !== null || this.legacyKey === null) return this.legacy ?? [];
    const bytes = await this.store.get(this.legacyKey);
    this.legacy = bytes === null ? [] : decodeBlock(await gunzip(bytes), 0);
    return this.legacy;
  }

  /** The archived entry that holds line number `line`, or null. */
  async entryWithLine(line: number): Promise<StreamEntry | null> {
    const candidates =
      this.index === null
        ? await this.legacyEntries()
        : await (async () => {
            const i = firstBlock(this.blocks, (b) => b.n + b.lines > line);
            const located = this.blocks[i];
            if (located === undefined || located.block.n > line) return [];
            return this.blockEntries(located);
          })();
    return candidates.find((entry) => holdsLine(entry, line)) ?? null;
  }

  /** How the archived log ended, when the archive is complete. */
  async end(): Promise<StreamEntry["end"] | null> {
    if (this.index !== null) return this.index.end;
    return (await this.legacyEntries()).at(-1)?.end ?? null;
  }

  /** Entries after `after` and before entry `until` (exclusive), oldest first. */
  async *forward(after: Cursor | null, until: string | null): AsyncGenerator<StreamEntry> {
    const inRange = (entry: StreamEntry) => until === null || compareEntryIds(entry.id, until) < 0;
    if (this.index === null) {
      for (const entry of await this.legacyEntries()) {
        if (!inRange(entry)) return;
        const sliced = afterCursor(entry, after);
        if (sliced !== null) yield sliced;
      }
      return;
    }
    // The first block that may hold lines after the cursor: blocks are in entry order.
    let i =
      after === null
        ? 0
        : firstBlock(this.blocks, (b) => compareEntryIds(b.to, after.entryId) >= 0);
    for (; i < this.blocks.length; i++) {
      const located = this.blocks[i];
      if (located === undefined) return;
      if (until !== null && compareEntryIds(located.block.from, until) >= 0) return;
      for (const entry of await this.blockEntries(located)) {
        if (!inRange(entry)) return;
        const sliced = afterCursor(entry, after);
        if (sliced !== null) yield sliced;
      }
    }
  }

  /** Entries before `before` and after entry `downTo` (exclusive), newest first. */
  async *backward(before: Cursor | null, downTo: string | null): AsyncGenerator<StreamEntry> {
    const inRange = (entry: StreamEntry) =>
      downTo === null || compareEntryIds(entry.id, downTo) > 0;
    const emit = function* (entries: readonly StreamEntry[]) {
      for (let j = entries.length - 1; j >= 0; j--) {
        const entry = entries[j];
        if (entry === undefined) continue;
        if (!inRange(entry)) return true;
        const sliced = beforeCursor(entry, before);
        if (sliced !== null) yield sliced;
      }
      return false;
    };
    if (this.index === null) {
      yield* emit(await this.legacyEntries());
      return;
    }
    // The last block that may hold lines before the cursor.
    let i =
      before === null
        ? this.blocks.length - 1
        : firstBlock(this.blocks, (b) => compareEntryIds(b.from, before.entryId) > 0) - 1;
    for (; i >= 0; i--) {
      const located = this.blocks[i];
      if (located === undefined) return;
      if (downTo !== null && compareEntryIds(located.block.to, downTo) <= 0) return;
      if (yield* emit(await this.blockEntries(located))) return;
    }
  }
}

/** Whether `entry` holds line number `line` (known only from its `n`). */
function holdsLine(entry: StreamEntry, line: number): boolean {
  return (
    entry.firstLine !== undefined &&
    entry.firstLine <= line &&
    line < entry.firstLine + entry.lines.length
  );
}

const entryMs = (id: string): number => Number(id.slice(0, id.indexOf("-")));

/** The index of the first block for which `test` holds (they are ordered), or the length. */
function firstBlock(blocks: readonly LocatedBlock[], test: (block: ArchiveBlock) => boolean) {
  let low = 0;
  let high = blocks.length;
  while (low < high) {
    const mid = (low + high) >> 1;
    const located = blocks[mid];
    if (located !== undefined && test(located.block)) high = mid;
    else low = mid + 1;
  }
  return low;
}

/** The part of `entry` after the cursor (null when none of it is), renumbered. */
function afterCursor(entry: StreamEntry, after: Cursor | null): StreamEntry | null {
  if (after === null) return entry;
  const order = compareEntryIds(entry.id, after.entryId);
  if (order < 0) return null;
  if (order > 0) return entry;
  const lines = entry.lines.slice(after.index + 1);
  if (lines.length === 0 && entry.end === undefined) return null;
  const skipped = entry.lines.length - lines.length;
  return {
    ...entry,
    lines,
    ...(entry.firstLine === undefined ? {} : { firstLine: entry.firstLine + skipped }),
  };
}

/** The part of `entry` before the cursor (null when none of it is); the end stays with the last line. */
function beforeCursor(entry: StreamEntry, before: Cursor | null): StreamEntry | null {
  if (before === null) return entry;
  const order = compareEntryIds(entry.id, before.entryId);
  if (order > 0) return null;
  if (order < 0) return entry;
  const lines = entry.lines.slice(0, before.index);
  if (lines.length === 0) return null;
  const { end: _end, ...rest } = entry;
  return { ...rest, lines };
}

export interface ReadOptions {
  /**
   * Entries per Redis read: the first read takes one (the cursor's own entry tells whether the
   * range is in Redis), each next one twice as many up to this. An entry holds up to 500 lines,
   * so a page of 100 usually costs one or two commands, and a download soon reads 64 at a time.
   */
  readonly entriesPerRead?: number;
}

/** Reads one job's log in either direction; see the module's comment. */
export class LogReader {
  private view: Promise<ArchiveView | null> | null = null;
  private readonly key: string;
  private readonly entriesPerRead: number;
  /** Redis commands this reader sent (for the figures the bench reports). */
  redisCommands = 0;

  private readonly redis: Redis;
  private readonly store: ArchiveStore;
  private readonly jobId: string;

  constructor(redis: Redis, store: ArchiveStore, jobId: string, options: ReadOptions = {}) {
    this.redis = redis;
    this.store = store;
    this.jobId = jobId;
    this.key = logStreamKey(jobId);
    this.entriesPerRead = options.entriesPerRead ?? 64;
  }

  /** The archive, opened at most once per reader; null when the job has none. */
  archive(): Promise<ArchiveView | null> {
    this.view ??= ArchiveView.open(this.store, this.jobId);
    return this.view;
  }

  private async xrange(start: string, end: string, count: number) {
    this.redisCommands += 1;
    return readRedisEntries(this.redis, this.key, start, end, count);
  }

  private async xrevrange(start: string, end: string, count: number) {
    this.redisCommands += 1;
    return decodeStreamReply(await this.redis.xrevrange(this.key, start, end, count));
  }

  /**
   * Where line number `line` (0-based) is: its cursor, or null when no entry has it (past the
   * end, lost, or written without line numbers). The archive's index first (no Redis command);
   * then a binary search over the live copy's entry ids, whose line numbers grow with them: one
   * XRANGE of one entry per halving of the build's time span, about 25 for a ten-hour build.
   */
  async locate(line: number): Promise<Cursor | null> {
    const cursorIn = (entry: StreamEntry): Cursor => ({
      entryId: entry.id,
      index: line - (entry.firstLine ?? 0),
    });
    const archived = await (await this.archive())?.entryWithLine(line);
    if (archived) return cursorIn(archived);
    const first = (await this.xrange("-", "+", 1))[0];
    const last = (await this.xrevrange("+", "-", 1))[0];
    if (first === undefined || last === undefined) return null;
    for (const entry of [first, last]) if (holdsLine(entry, line)) return cursorIn(entry);
    if (first.firstLine === undefined || first.firstLine > line) return null;
    if (last.firstLine === undefined || last.firstLine < line) return null;
    // The entry sought has an id after `first`'s and before `last`'s: halve the time between.
    let low = entryMs(first.id);
    let high = entryMs(last.id);
    while (low < high) {
      const mid = Math.ceil((low + high) / 2);
      const probe = (await this.xrange(`${mid}-0`, "+", 1))[0];
      if (probe === undefined || probe.firstLine === undefined) return null;
      if (holdsLine(probe, line)) return cursorIn(probe);
      if (probe.firstLine > line) high = mid - 1;
      else low = entryMs(probe.id);
    }
    // Several entries can share a millisecond: read those of the last one.
    for (const entry of await this.xrange(`${low}-0`, `${low}-${Number.MAX_SAFE_INTEGER}`, 64))
      if (holdsLine(entry, line)) return cursorIn(entry);
    return null;
  }

  /**
   * Lines after `after` (from the start when null), oldest first, as entries; up to entry
   * `until` (exclusive) when given. Ends after the terminal entry.
   */
  async *forward(after: Cursor | null, until: string | null = null): AsyncGenerator<LogItem> {
    const end = until === null ? "+" : `(${until}`;
    // The line number the next line must have, when known.
    let expected: number | undefined = after === null ? 0 : undefined;
    let position: Cursor | null = after;
    let first = true;
    let foundInRedis = false;
    let count = 1;
    for (; ; count = Math.min(count * 2, this.entriesPerRead)) {
      const start = first ? (after?.entryId ?? "-") : `(${position?.entryId ?? "0-0"}`;
      const read = await this.xrange(start, end, count);
      const wasFirst = first;
      first = false;
      for (const [i, entry] of read.entries()) {
        if (wasFirst && i === 0 && after !== null && entry.id === after.entryId) {
          // The cursor's own entry: it is here, so nothing before it is missing.
          foundInRedis = true;
          expected = nextLineAfter(entry);
          position = { entryId: entry.id, index: Number.MAX_SAFE_INTEGER };
          const rest = afterCursor(entry, after);
          if (rest !== null) yield { kind: "entry", entry: rest };
          if (entry.end !== undefined) return;
          continue;
        }
        const hole =
          expected !== undefined && entry.firstLine !== undefined && entry.firstLine > expected;
        // Also when the cursor's entry was not here: the archive may hold what lies between.
        if (hole || (!foundInRedis && expected === undefined)) {
          const next = yield* this.archivedBetween(position, entry.id, expected, entry.firstLine);
          if (next.ended) return;
        }
        foundInRedis = true;
        yield { kind: "entry", entry };
        expected =
          nextLineAfter(entry) ??
          (expected === undefined ? undefined : expected + entry.lines.length);
        position = { entryId: entry.id, index: Number.MAX_SAFE_INTEGER };
        if (entry.end !== undefined) return;
      }
      if (read.length < count) {
        // Redis has no more. When it had nothing at all, the archive may have it all (the
        // live copy expired): read on there.
        if (!foundInRedis) yield* this.archivedBetween(position, until, expected, undefined);
        return;
      }
    }
  }

  /**
   * Archived entries after `from` and before entry `until`, oldest first: a hole in the live
   * copy, announced first (`archive`), with lines that are nowhere announced (`lost`).
   * `expected` is the line number after `from`, `resumesAt` the one at `until`, when known.
   */
  async *archivedBetween(
    from: Cursor | null,
    until: string | null,
    expected: number | undefined,
    resumesAt: number | undefined,
  ): AsyncGenerator<LogItem, { ended: boolean }> {
    const view = await this.archive();
    let next = expected;
    let announced = false;
    const holeLines =
      expected !== undefined && resumesAt !== undefined ? resumesAt - expected : null;
    if (view !== null) {
      for await (const entry of view.forward(from, until)) {
        if (!announced && until !== null) {
          // A hole in the live copy: say so once, then serve it from the archive.
          yield { kind: "gap", gap: { lines: holeLines, where: "archive" } };
          announced = true;
        }
        if (next !== undefined && entry.firstLine !== undefined && entry.firstLine > next)
          yield { kind: "gap", gap: { lines: entry.firstLine - next, where: "lost" } };
        yield { kind: "entry", entry };
        next = nextLineAfter(entry);
        if (entry.end !== undefined) return { ended: true };
      }
    }
    // Lines between what the archive had and where the live copy resumes are nowhere. With no
    // line number to go by (a cursor whose entry is gone), only a resume past line 0 can be.
    if (resumesAt !== undefined && (next === undefined ? resumesAt > 0 : resumesAt > next))
      yield {
        kind: "gap",
        gap: { lines: next === undefined ? null : resumesAt - next, where: "lost" },
      };
    return { ended: false };
  }

  /** Lines before `before` (from the end when null), newest entry first. */
  async *backward(before: Cursor | null): AsyncGenerator<LogItem> {
    let newer: StreamEntry | null = null;
    let position = before?.entryId ?? "+";
    let first = true;
    let count = 1;
    for (; ; count = Math.min(count * 2, this.entriesPerRead)) {
      const read = await this.xrevrange(first ? position : `(${position}`, "-", count);
      const wasFirst = first;
      first = false;
      for (const [i, entry] of read.entries()) {
        if (wasFirst && i === 0 && before !== null && entry.id !== before.entryId) {
          // The cursor's entry is not in Redis: what lies between is in the archive, if anywhere.
          yield* this.fillBackward(before, entry, null);
        } else if (
          newer !== null &&
          newer.firstLine !== undefined &&
          (nextLineAfter(entry) ?? newer.firstLine) < newer.firstLine
        ) {
          yield* this.fillBackward({ entryId: newer.id, index: 0 }, entry, newer.firstLine);
        }
        const part = beforeCursor(entry, wasFirst && i === 0 ? before : null);
        if (part !== null) yield { kind: "entry", entry: part };
        newer = entry;
        position = entry.id;
      }
      if (read.length < count) {
        // The bottom of Redis: below its oldest entry, the archive may hold older lines.
        if (newer === null) yield* this.fillBackward(before, null, null);
        else if ((newer.firstLine ?? 0) > 0)
          yield* this.fillBackward({ entryId: newer.id, index: 0 }, null, newer.firstLine ?? null);
        return;
      }
    }
  }

  /** Archived entries before `before` and after `older` (newest first), with lost lines announced. */
  private async *fillBackward(
    before: Cursor | null,
    older: StreamEntry | null,
    above: number | null,
  ): AsyncGenerator<LogItem> {
    const view = await this.archive();
    const floor = older === null ? 0 : (nextLineAfter(older) ?? null);
    let top = above;
    if (view !== null) {
      for await (const entry of view.backward(before, older?.id ?? null)) {
        const after = nextLineAfter(entry);
        if (top !== null && after !== undefined && after < top)
          yield { kind: "gap", gap: { lines: top - after, where: "lost" } };
        yield { kind: "entry", entry };
        top = entry.firstLine ?? null;
      }
    }
    if (top !== null && floor !== null && top > floor)
      yield { kind: "gap", gap: { lines: top - floor, where: "lost" } };
  }
}
