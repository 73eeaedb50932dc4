import type { LogRecord } from "../src/shared/entry.ts";

export interface PendingLinesLimits {
  readonly maxEntryLines: number;
  readonly maxEntryBytes: number;
  readonly maxRequestBytes: number;
  /** Lines waiting beyond this many bytes are dropped, oldest first, and counted. */
  readonly maxBufferedBytes: number;
}

/**
 * The lines waiting for Redis, bounded in memory, and cut into the entries of the next request:
 * each entry within its line and byte limits, the request within Upstash's.
 */
export interface PendingLines {
  readonly count: number;
  /** Memory the waiting lines take, roughly (what the bound counts). */
  readonly bytes: number;
  readonly firstPhase: string | undefined;
  /** Lines dropped for the memory bound and not yet announced in the log. */
  readonly unannouncedDrops: number;
  /** Adds a line at the end; returns how many of the oldest were dropped to make room. */
  push(record: LogRecord): number;
  pushFront(record: LogRecord): void;
  /** Returns the unannounced drop count and resets it (the caller announces them). */
  takeUnannouncedDrops(): number;
  /** Removes and returns the lines of the next request, grouped into its entries. */
  takeEntries(): LogRecord[][];
}

const RECORD_OVERHEAD_BYTES = 96;

/** Memory a waiting record takes, roughly: what the buffer bound counts. */
function recordBytes(record: LogRecord): number {
  return (record.text.length + spansLength(record)) * 2 + RECORD_OVERHEAD_BYTES;
}

// A style span is at most about 60 characters of JSON plus its link (style-spans.ts).
function spansLength(record: LogRecord): number {
  let length = 0;
  for (const span of record.spans ?? []) length += 64 + (span.h?.length ?? 0);
  return length;
}

/**
 * An upper bound of a record's bytes in the Upstash request: the text is JSON-encoded twice
 * (into the entry's `lines` field, then into the request body), so a `"` or `\` becomes 4
 * bytes, and a UTF-16 unit is at most 3 bytes of UTF-8. Planning with this bound keeps every
 * request under Upstash's 10 MB, whatever the build prints.
 */
function wireBytes(record: LogRecord): number {
  return (record.text.length + spansLength(record)) * 4 + 160;
}

export function createPendingLines(limits: PendingLinesLimits): PendingLines {
  let records: LogRecord[] = [];
  let bytes = 0;
  let unannouncedDrops = 0;

  const dropOldest = (): number => {
    let dropped = 0;
    while (bytes > limits.maxBufferedBytes && dropped < records.length) {
      const record = records[dropped];
      if (record === undefined) break;
      bytes -= recordBytes(record);
      dropped += 1;
    }
    if (dropped === 0) return 0;
    records = records.slice(dropped);
    unannouncedDrops += dropped;
    return dropped;
  };

  return {
    get count() {
      return records.length;
    },
    get bytes() {
      return bytes;
    },
    get firstPhase() {
      return records[0]?.phase;
    },
    get unannouncedDrops() {
      return unannouncedDrops;
    },
    push(record) {
      records.push(record);
      bytes += recordBytes(record);
      return bytes > limits.maxBufferedBytes ? dropOldest() : 0;
    },
    pushFront(record) {
      records.unshift(record);
      bytes += recordBytes(record);
    },
    takeUnannouncedDrops() {
      const dropped = unannouncedDrops;
      unannouncedDrops = 0;
      return dropped;
    },
    takeEntries() {
      const entries: LogRecord[][] = [];
      let requestBytes = 0;
      let taken = 0;
      while (taken < records.length && requestBytes < limits.maxRequestBytes) {
        const entry: LogRecord[] = [];
        let entryBytes = 0;
        while (taken < records.length && entry.length < limits.maxEntryLines) {
          const record = records[taken];
          if (record === undefined) break;
          const size = wireBytes(record);
          if (
            entry.length > 0 &&
            (entryBytes + size > limits.maxEntryBytes ||
              requestBytes + entryBytes + size > limits.maxRequestBytes)
          )
            break;
          entry.push(record);
          entryBytes += size;
          taken += 1;
        }
        if (entry.length === 0) break;
        entries.push(entry);
        requestBytes += entryBytes;
      }
      for (const record of records.slice(0, taken)) bytes -= recordBytes(record);
      records = records.slice(taken);
      return entries;
    },
  };
}
