import type { Redis } from "@upstash/redis/cloudflare";
import { encodeEndFields, encodeEntryFields, type LogRecord } from "../../src/shared/entry.ts";
import type { TerminalStatus } from "../../src/shared/job.ts";
import { logStreamKey } from "../../src/shared/keys.ts";

/** The text of numbered line `i`: what a ground-truth build prints. */
export function numberedText(i: number): string {
  return `line ${String(i).padStart(7, "0")} of the numbered build`;
}

/** The number of a numbered line, or null for any other line (system lines, gap notices). */
export function numberOf(text: string): number | null {
  const match = /^line (\d{7}) of the numbered build$/.exec(text);
  return match?.[1] === undefined ? null : Number(match[1]);
}

export interface LineAudit {
  readonly seen: number;
  readonly missing: number;
  readonly duplicated: number;
  readonly outOfOrder: number;
}

/** Counts missing, duplicated and out-of-order numbered lines against 0..expected-1. */
export function auditLines(texts: Iterable<string>, expected: number, from = 0): LineAudit {
  const counts = new Uint8Array(expected);
  let seen = 0;
  let duplicated = 0;
  let outOfOrder = 0;
  let last = -1;
  for (const text of texts) {
    const n = numberOf(text);
    if (n === null) continue;
    seen += 1;
    if (n < from || n >= expected) continue;
    if (counts[n] === 1) duplicated += 1;
    counts[n] = 1;
    if (n < last) outOfOrder += 1;
    last = n;
  }
  let missing = 0;
  for (let i = from; i < expected; i++) if (counts[i] === 0) missing += 1;
  return { seen, missing, duplicated, outOfOrder };
}

/**
 * Writes `total` numbered lines (from line `from`, 0 by default) to the job's stream as the runner would (explicit increasing
 * ids, `linesPerEntry` lines and a line number per entry), pipelined, then the terminal entry
 * when `end` is given. Returns the entry ids in order.
 */
export async function writeNumberedLog(
  redis: Redis,
  jobId: string,
  total: number,
  options: { linesPerEntry?: number; end?: TerminalStatus; startMs?: number; from?: number } = {},
): Promise<string[]> {
  const key = logStreamKey(jobId);
  const perEntry = options.linesPerEntry ?? 500;
  let ms = options.startMs ?? Date.now();
  const ids: string[] = [];
  const ts = new Date().toISOString();
  const record = (i: number): LogRecord => ({
    ts,
    source: "stdout",
    phase: "build",
    text: numberedText(i),
  });
  let pipeline = redis.pipeline();
  let queued = 0;
  const from = options.from ?? 0;
  const last = from + total;
  for (let first = from; first < last; first += perEntry) {
    const records: LogRecord[] = [];
    for (let i = first; i < Math.min(last, first + perEntry); i++) records.push(record(i));
    const id = `${++ms}-0`;
    ids.push(id);
    pipeline.xadd(key, id, encodeEntryFields(records, first));
    if (++queued === 40) {
      await pipeline.exec();
      pipeline = redis.pipeline();
      queued = 0;
    }
  }
  if (options.end !== undefined) {
    const id = `${++ms}-0`;
    ids.push(id);
    pipeline.xadd(key, id, encodeEndFields(options.end, [], last));
    queued += 1;
  }
  if (queued > 0) await pipeline.exec();
  return ids;
}
