/**
 * Chooses the stream entry ids the writer sends (`<ms>-<seq>`), strictly increasing. The
 * runner picks ids itself, instead of Redis's `*`, so a retried request that had in fact
 * succeeded is refused as a duplicate id rather than appended twice.
 */
export interface EntryIdClock {
  next(): string;
  /** Moves the clock past `id` (the stream's top entry): later ids sort after it. */
  advancePast(id: string): void;
}

export function createEntryIdClock(now: () => number = Date.now): EntryIdClock {
  let lastMs = -1;
  let lastSeq = 0;
  return {
    next() {
      const ms = now();
      if (ms > lastMs) {
        lastMs = ms;
        lastSeq = 0;
      } else {
        lastSeq += 1;
      }
      return `${lastMs}-${lastSeq}`;
    },
    advancePast(id) {
      const [ms = 0, seq = 0] = id.split("-").map(Number);
      if (ms > lastMs || (ms === lastMs && seq > lastSeq)) {
        lastMs = ms;
        lastSeq = seq;
      }
    },
  };
}
