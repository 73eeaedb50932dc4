// The bench's log lines and what readers did with them: every line's text carries its sequence
// number and the time it was appended, so any reader (an SSE viewer or a polling client) can
// tell its delivery latency and whether it got every line exactly once, in order.

/** Milliseconds on one clock shared by the appender and every reader in this process. */
export function nowMs(): number {
  return performance.timeOrigin + performance.now();
}

// Build-output-like filler, so a line is about as long as a real one (~110 characters).
const FILLER = "transforming src/components/BuildStatusPanel.tsx (vite:esbuild)";

export function lineText(seq: number, appendedAt: number): string {
  return `seq=${seq} at=${appendedAt.toFixed(3)} ${FILLER}`;
}

const LINE_TEXT = /^seq=(\d+) at=(\d+\.\d+) /;

export interface StampedLine {
  readonly seq: number;
  readonly appendedAt: number;
}

/** The stamp of a line written by lineText(); null for any other text. */
export function parseLineText(text: string): StampedLine | null {
  const match = LINE_TEXT.exec(text);
  if (match?.[1] === undefined || match[2] === undefined) return null;
  return { seq: Number(match[1]), appendedAt: Number(match[2]) };
}

export interface LatencySummary {
  readonly p50: number;
  readonly p99: number;
  readonly max: number;
}

export interface DeliverySummary {
  readonly readers: number;
  /** Lines each reader should have got. */
  readonly expectedPerReader: number;
  /** First receipts of lines, over all readers. */
  readonly delivered: number;
  /** Lines a reader skipped or never got. */
  readonly missing: number;
  /** Lines a reader got again, or after a later one. */
  readonly repeated: number;
  /** Readers that got every line. */
  readonly completeReaders: number;
  /** Append to receipt, over every first receipt. */
  readonly latency: LatencySummary;
  /** The same over lines appended at or after `warmFrom` only. */
  readonly warmLatency: LatencySummary;
  /**
   * Per line, its first receipt over all readers: the path to the object (batching, XADD,
   * push), without the fan-out's spread over the readers.
   */
  readonly firstLatency: LatencySummary;
  /** When the last line reached its reader (nowMs clock); NaN if none did. */
  readonly lastReceiptAt: number;
}

/**
 * Records, per reader, which lines arrived and how late. Lines are numbered 0, 1, 2, ... in
 * append order; a reader must see exactly that sequence.
 */
export interface DeliveryLog {
  receive(reader: number, line: StampedLine, receivedAt: number): void;
  /** True once every reader has lines 0 to expectedPerReader - 1. */
  allComplete(expectedPerReader: number): boolean;
  /** `warmFrom`: lines appended before it are left out of warmLatency. */
  summary(expectedPerReader: number, warmFrom: number): DeliverySummary;
}

/** `capacityPerReader`: the most lines any reader will be sent. */
export function createDeliveryLog(readers: number, capacityPerReader: number): DeliveryLog {
  const nextSeq = new Int32Array(readers);
  const skipped = new Float64Array(readers);
  let repeated = 0;
  // One slot per (reader, line) first receipt: latency and when the line was appended.
  const latencies = new Float64Array(readers * capacityPerReader);
  const appendedAts = new Float64Array(readers * capacityPerReader);
  const firstLatencies = new Float64Array(capacityPerReader).fill(Number.POSITIVE_INFINITY);
  let count = 0;
  let lastReceiptAt = Number.NaN;
  return {
    receive(reader, line, receivedAt) {
      const expected = nextSeq[reader];
      if (expected === undefined) throw new RangeError(`no reader ${reader}`);
      if (line.seq < expected || line.seq >= capacityPerReader) {
        repeated++;
        return;
      }
      skipped[reader] = (skipped[reader] ?? 0) + (line.seq - expected);
      nextSeq[reader] = line.seq + 1;
      const latency = receivedAt - line.appendedAt;
      latencies[count] = latency;
      appendedAts[count] = line.appendedAt;
      if (latency < (firstLatencies[line.seq] ?? 0)) firstLatencies[line.seq] = latency;
      count++;
      if (!(lastReceiptAt >= receivedAt)) lastReceiptAt = receivedAt;
    },
    allComplete(expectedPerReader) {
      return nextSeq.every((next) => next >= expectedPerReader);
    },
    summary(expectedPerReader, warmFrom) {
      let missing = 0;
      let complete = 0;
      for (let reader = 0; reader < readers; reader++) {
        const gap =
          (skipped[reader] ?? 0) + Math.max(0, expectedPerReader - (nextSeq[reader] ?? 0));
        missing += gap;
        if (gap === 0) complete++;
      }
      const all = latencies.subarray(0, count);
      const warm = all.filter((_, i) => (appendedAts[i] ?? 0) >= warmFrom);
      return {
        readers,
        expectedPerReader,
        delivered: count,
        missing,
        repeated,
        completeReaders: complete,
        latency: latencySummary(all),
        warmLatency: latencySummary(warm),
        firstLatency: latencySummary(
          firstLatencies.subarray(0, expectedPerReader).filter(Number.isFinite),
        ),
        lastReceiptAt,
      };
    },
  };
}

function latencySummary(samples: Float64Array): LatencySummary {
  const sorted = Float64Array.from(samples).sort();
  return {
    p50: quantile(sorted, 0.5),
    p99: quantile(sorted, 0.99),
    max: sorted.at(-1) ?? Number.NaN,
  };
}

function quantile(sorted: Float64Array, q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? Number.NaN;
}
