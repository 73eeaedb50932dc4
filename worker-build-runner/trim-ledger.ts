/**
 * What the writer knows is in the stream, oldest first, with each entry's line count: enough to
 * choose the `MINID` that keeps about `maxLines` of the newest lines, without asking Redis.
 */
export interface TrimLedger {
  /**
   * The MINID threshold that leaves about `maxLines` lines once `incomingLines` more (the
   * first of them in entry `firstIncomingId`) are in; null when nothing needs trimming.
   */
  planTrim(incomingLines: number, firstIncomingId: string | undefined): string | null;
  /** An entry is in the stream. */
  record(id: string, lines: number): void;
  /** A trim to `minId` was applied: entries before it are gone. */
  trimmedTo(minId: string): void;
}

export function createTrimLedger(maxLines: number): TrimLedger {
  const entries: { id: string; lines: number }[] = [];
  let head = 0;
  let keptLines = 0;
  return {
    planTrim(incomingLines, firstIncomingId) {
      let kept = keptLines + incomingLines;
      let cut = head;
      while (cut < entries.length) {
        const entry = entries[cut];
        if (entry === undefined || kept - entry.lines < maxLines) break;
        kept -= entry.lines;
        cut += 1;
      }
      if (cut === head) return null;
      return entries[cut]?.id ?? firstIncomingId ?? null;
    },
    record(id, lines) {
      entries.push({ id, lines });
      keptLines += lines;
    },
    trimmedTo(minId) {
      while (head < entries.length) {
        const entry = entries[head];
        if (entry === undefined || entry.id === minId) break;
        keptLines -= entry.lines;
        head += 1;
      }
      if (head > 1024 && head > entries.length / 2) {
        entries.splice(0, head);
        head = 0;
      }
    },
  };
}
