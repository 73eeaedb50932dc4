import type { Redis } from "@upstash/redis/cloudflare";
import {
  type Cursor,
  compareToCursor,
  decodeStreamReply,
  type LogLine,
  parseCursor,
} from "../shared/entry.ts";
import { logStreamKey } from "../shared/keys.ts";
import type { ArchivedLog } from "./archive.ts";

export const DEFAULT_PAGE_LIMIT = 100;
export const MAX_PAGE_LIMIT = 500;
// Entries per XRANGE: an entry holds 1 to 500 lines, so a page usually takes one read.
const ENTRIES_PER_READ = 64;

export interface HistoryQuery {
  readonly before?: Cursor;
  readonly after?: Cursor;
  readonly limit: number;
}

export interface HistoryPage {
  /** Chronological. */
  readonly lines: LogLine[];
  /** Whether more lines lie beyond this page in the direction it was read. */
  readonly hasMore: boolean;
}

/** Whether the line at (`entryId`, `index`) lies inside the query's range. */
function inRange(entryId: string, index: number, query: HistoryQuery): boolean {
  return (
    (query.after === undefined || compareToCursor(entryId, index, query.after) > 0) &&
    (query.before === undefined || compareToCursor(entryId, index, query.before) < 0)
  );
}

/**
 * Lines after `after` (oldest first), or before `before` (newest first, then put in order), or
 * the newest lines when neither is given; a page never holds more than `limit` lines. Reads
 * entry ranges with XRANGE / XREVRANGE; the cursor's own entry is read again and the lines up
 * to the cursor are skipped, so a page boundary may fall inside an entry.
 */
export async function readHistory(
  redis: Redis,
  jobId: string,
  query: HistoryQuery,
): Promise<HistoryPage> {
  const key = logStreamKey(jobId);
  const { after, before, limit } = query;
  const wanted = limit + 1; // one more tells whether there is more
  const lines: LogLine[] = [];
  if (after !== undefined) {
    let start = after.entryId;
    const end = before?.entryId ?? "+";
    for (;;) {
      const entries = decodeStreamReply(await redis.xrange(key, start, end, ENTRIES_PER_READ));
      for (const entry of entries) {
        entry.lines.forEach((line, i) => {
          if (inRange(entry.id, i, query)) lines.push(line);
        });
      }
      const last = entries.at(-1);
      if (lines.length >= wanted || entries.length < ENTRIES_PER_READ || last === undefined) break;
      start = `(${last.id}`;
    }
    return { lines: lines.slice(0, limit), hasMore: lines.length > limit };
  }
  let start = before?.entryId ?? "+";
  for (;;) {
    const entries = decodeStreamReply(await redis.xrevrange(key, start, "-", ENTRIES_PER_READ));
    for (const entry of entries) {
      for (let i = entry.lines.length - 1; i >= 0; i--) {
        const line = entry.lines[i];
        if (line && inRange(entry.id, i, query)) lines.push(line);
      }
    }
    const last = entries.at(-1);
    if (lines.length >= wanted || entries.length < ENTRIES_PER_READ || last === undefined) break;
    start = `(${last.id}`;
  }
  return { lines: lines.slice(0, limit).reverse(), hasMore: lines.length > limit };
}

/** The same page as readHistory, from a log held whole in memory (the archive). */
export function pageFromLines(all: readonly LogLine[], query: HistoryQuery): HistoryPage {
  const { after, limit } = query;
  const selected = all.filter((line) => {
    const cursor = parseCursor(line.cursor);
    return cursor !== null && inRange(cursor.entryId, cursor.index, query);
  });
  if (after !== undefined)
    return { lines: selected.slice(0, limit), hasMore: selected.length > limit };
  return {
    lines: selected.slice(Math.max(0, selected.length - limit)),
    hasMore: selected.length > limit,
  };
}

/** One line of the plain-text download. */
export function formatTextLine(line: LogLine): string {
  return `${line.ts} ${line.source.padEnd(6)} ${line.text}\n`;
}

/**
 * The whole log as plain text, streamed a page of entries at a time from Redis, or from the
 * archive when Redis no longer has it.
 */
export function streamLogText(
  redis: Redis,
  jobId: string,
  archive: (() => Promise<ArchivedLog | null>) | null,
): ReadableStream<Uint8Array> {
  const encoder = new TextEncoder();
  const key = logStreamKey(jobId);
  let start = "-";
  let sent = 0;
  let done = false;
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      if (done) return;
      const entries = decodeStreamReply(await redis.xrange(key, start, "+", 500));
      let text = "";
      for (const entry of entries) for (const line of entry.lines) text += formatTextLine(line);
      sent += entries.length;
      const last = entries.at(-1);
      if (last !== undefined && entries.length === 500) {
        start = `(${last.id}`;
      } else {
        done = true;
        if (sent === 0 && archive !== null) {
          const archived = await archive();
          for (const line of archived?.lines ?? []) text += formatTextLine(line);
        }
      }
      if (text !== "") controller.enqueue(encoder.encode(text));
      if (done) controller.close();
    },
  });
}
