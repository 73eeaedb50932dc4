import { compareEntryIds } from "../src/shared/entry.ts";

export interface TrimPolicy {
  /**
   * The first lines stay live for the whole build (what a viewer opens first), as many as fit
   * in a quarter of `maxLiveBytes`.
   */
  readonly headLines: number;
  /** The newest lines stay live (what viewers follow and resume into)... */
  readonly tailLines: number;
  /**
   * ...within this many bytes for the whole live copy. Past it the oldest entries after the head
   * go even if the archive does not have them yet (it is behind or unreachable), unless the
   * writer holds the build for the archive instead; the tail's as well when long lines make it
   * too big alone (all but its newest entry). Upstash refuses a key past 100 MB. The writer
   * says so in the log, and readers announce the hole with its count.
   */
  readonly maxLiveBytes: number;
}

export interface TrimPlan {
  /** Entries to delete (one XDEL), oldest first. */
  readonly ids: readonly string[];
  readonly lines: number;
  /** Of those, lines the archive did not have: lost. */
  readonly unarchivedLines: number;
}

/**
 * What the writer knows is in the stream, oldest first, with each entry's lines and bytes:
 * enough to choose what to trim without asking Redis. The live copy keeps its head and its
 * tail; the middle leaves it only once the archive holds it (`archivedThrough`), so no reader
 * ever meets a hole the archive cannot fill, except past the byte cap.
 */
export interface TrimLedger {
  /**
   * Entries to delete once `incomingLines` / `incomingBytes` more are in; null when none. With
   * `keepUnarchived`, nothing the archive lacks is chosen even past the byte cap (the writer
   * holds the build until the archive catches up instead).
   */
  planTrim(incomingLines: number, incomingBytes: number, keepUnarchived?: boolean): TrimPlan | null;
  /** An entry is in the stream. */
  record(id: string, lines: number, bytes: number): void;
  /** A plan was applied: its entries are gone. */
  trimmed(plan: TrimPlan): void;
  /** The archive holds every entry up to this id. */
  archivedThrough(id: string): void;
  /** The live copy holds more than head and tail: the archive's progress could let it trim. */
  readonly overKeep: boolean;
  /** Bytes of the entries in the live copy (the head and from the first not deleted on). */
  readonly liveBytes: number;
  /** The newest entry known to be in the stream, if any. */
  readonly newestId: string | undefined;
  /**
   * Redis lost data: the stream's top is `topId` (null: the stream is gone). Forgets the
   * entries after it and returns how many of their lines the archive does not hold either.
   */
  forgetAfter(topId: string | null): number;
}

// Lines and bytes of some entries.
interface Tally {
  lines: number;
  bytes: number;
}

const count = (tally: Tally, entry: Readonly<Tally>): void => {
  tally.lines += entry.lines;
  tally.bytes += entry.bytes;
};

const uncount = (tally: Tally, entry: Readonly<Tally>): void => {
  tally.lines -= entry.lines;
  tally.bytes -= entry.bytes;
};

export function createTrimLedger(policy: TrimPolicy): TrimLedger {
  const entries: (Tally & { id: string })[] = [];
  // Entries [0, headEnd) are the head; [headEnd, next) are deleted; from `next` on are live.
  let headEnd = 0;
  let next = 0;
  const head: Tally = { lines: 0, bytes: 0 };
  // The whole live copy, the head included.
  const live: Tally = { lines: 0, bytes: 0 };
  let archived: string | null = null;
  const tailStart = (incoming: number): number => {
    // The first live entry the tail needs, counting the incoming lines as the newest.
    let kept = incoming;
    let i = entries.length;
    while (i > next && kept < policy.tailLines) {
      i -= 1;
      kept += entries[i]?.lines ?? 0;
    }
    return i;
  };
  return {
    planTrim(incomingLines, incomingBytes, keepUnarchived = false) {
      const stop = tailStart(incomingLines);
      const ids: string[] = [];
      let lines = 0;
      let unarchivedLines = 0;
      let bytes = live.bytes + incomingBytes;
      for (let i = Math.max(next, headEnd); i < entries.length; i++) {
        const entry = entries[i];
        if (entry === undefined) break;
        const overBytes = bytes > policy.maxLiveBytes;
        // The tail's lines are not enough: long lines can make it too big alone. Then its
        // oldest go as well, all but the newest entry.
        if (i >= stop && (!overBytes || i === entries.length - 1)) break;
        const isArchived = archived !== null && compareEntryIds(entry.id, archived) <= 0;
        if (!isArchived && (keepUnarchived || !overBytes)) break;
        ids.push(entry.id);
        lines += entry.lines;
        bytes -= entry.bytes;
        if (!isArchived) unarchivedLines += entry.lines;
      }
      return ids.length === 0 ? null : { ids, lines, unarchivedLines };
    },
    record(id, lines, bytes) {
      const entry = { id, lines, bytes };
      entries.push(entry);
      count(live, entry);
      // The head, too, within its share of the bytes: a quarter.
      if (
        headEnd === entries.length - 1 &&
        head.lines < policy.headLines &&
        head.bytes + bytes <= policy.maxLiveBytes / 4
      ) {
        headEnd = entries.length;
        count(head, entry);
        if (next < headEnd) next = headEnd;
      }
    },
    trimmed(plan) {
      for (const id of plan.ids) {
        const entry = entries[next];
        if (entry === undefined || entry.id !== id) break;
        uncount(live, entry);
        next += 1;
      }
      // The deleted entries' bookkeeping is dropped once it is most of the ledger.
      if (next - headEnd > 1024 && next - headEnd > entries.length / 2) {
        entries.splice(headEnd, next - headEnd);
        next = headEnd;
      }
    },
    archivedThrough(id) {
      if (archived === null || compareEntryIds(id, archived) > 0) archived = id;
    },
    get newestId() {
      // Live entries are the head [0, headEnd) and [next, length); the newest is the last one
      // unless it was deleted (never: the tail stays).
      const last = entries.at(-1);
      return last !== undefined && (entries.length > next || headEnd === entries.length)
        ? last.id
        : undefined;
    },
    forgetAfter(topId) {
      let lost = 0;
      for (let last = entries.at(-1); last !== undefined; last = entries.at(-1)) {
        if (topId !== null && compareEntryIds(last.id, topId) <= 0) break;
        const i = entries.length - 1;
        entries.pop();
        if (i < headEnd || i >= next) {
          uncount(live, last);
          if (archived === null || compareEntryIds(last.id, archived) > 0) lost += last.lines;
        }
        if (i < headEnd) {
          headEnd = i;
          uncount(head, last);
        }
        if (next > entries.length) next = entries.length;
      }
      return lost;
    },
    get liveBytes() {
      return live.bytes;
    },
    get overKeep() {
      return live.lines > head.lines + policy.tailLines || live.bytes > policy.maxLiveBytes;
    },
  };
}
