import type { FlushTiming } from "./redis-writer.ts";

/**
 * A round-trip estimate as TCP keeps one (RFC 6298): the smoothed mean plus twice the smoothed
 * deviation, so that it covers most round trips, not only the typical one.
 */
export function createRoundTripEstimate(initialMs: number) {
  let mean = initialMs;
  let deviation = initialMs / 2;
  let seen = false;
  return {
    observe(ms: number): void {
      if (!seen) {
        mean = ms;
        deviation = ms / 2;
        seen = true;
        return;
      }
      deviation = 0.75 * deviation + 0.25 * Math.abs(ms - mean);
      mean = 0.875 * mean + 0.125 * ms;
    },
    get ms(): number {
      return mean + 2 * deviation;
    },
  };
}

/** What the batching knows of a round trip: its estimate, fed one sample per answer. */
export interface RoundTripEstimate {
  observe(ms: number): void;
  readonly ms: number;
}

/**
 * A path's base delay, as LEDBAT and BBR keep one: the least round trip seen over the last
 * `windowMs`, so that delay queued up behind the sender's own traffic is left out. The push's
 * round trip needs it. Its answer waits while the object fans out the pushes before it (some
 * 40 ms per push at 1,000 viewers on this machine), so the smoothed estimate above grows with
 * the object's load. Subtracted from the target, that larger figure made the writer stop
 * pairing entries, and twice the pushes made twice the fan-outs. The object was then busier
 * still, and stayed so: in bench:fanout at 1,000 viewers the first 6 s of a build went at 20
 * pushes a second with round trips near 50 ms, and from then on at 10 a second near 5 ms.
 * Waiting sends fewer pushes into a busy object; sending sooner does not deliver sooner.
 */
export function createBaseDelayEstimate(
  initialMs: number,
  options: { windowMs?: number; now?: () => number } = {},
): RoundTripEstimate {
  const windowMs = options.windowMs ?? 10_000;
  const now = options.now ?? Date.now;
  // Samples that may yet be the least in the window: increasing in both time and size.
  const samples: Array<{ at: number; ms: number }> = [];
  return {
    observe(ms: number): void {
      const at = now();
      while (samples.length > 0 && (samples.at(-1)?.ms ?? 0) >= ms) samples.pop();
      samples.push({ at, ms });
    },
    get ms(): number {
      const since = now() - windowMs;
      while (samples.length > 1 && (samples[0]?.at ?? 0) < since) samples.shift();
      return samples[0]?.ms ?? initialMs;
    },
  };
}

export interface LiveFlushTimingOptions {
  /** Newline-to-viewer time the oldest line of a batch should stay within. */
  readonly targetMs?: number;
  /**
   * While watched, a batch of this many lines pays its share of the command budget (7 lines
   * per XADD is 143 commands per 1,000 lines; Upstash bills every command): it goes by the
   * latency target alone, without waiting out `minSpacingMs`.
   */
  readonly budgetLines?: number;
  /**
   * While watched, smaller batches start at least this long apart: the write's cost while
   * lines trickle. At a line every 10 ms, batches reach `budgetLines` first (60 ms after their
   * first line, with room for lines a few ms late; at 70 ms the spacing's timer and the 7th line
   * came together, and the timer often went first, one line short); slower lines go at most this
   * often whatever the round trips.
   */
  readonly minSpacingMs?: number;
  /** How long a line waits for company while nobody watches (nobody waits for it then). */
  readonly unwatchedMs?: number;
  /**
   * Whether the object paces its fan-out (the last push's answer, LivePushAnswer.paced): a
   * batch that pays its share of the command budget then goes at once, not held for the next.
   * Held, two chunks of a build's output make one push and one fan-out to every viewer, and
   * the older chunk waits for the newer; sent, the object writes each to a share of the
   * viewers in turn, and a fan-out to 1,000 viewers costs half as long (Viewers.fanOut).
   */
  readonly eager?: () => boolean;
  /** Whether the job may have viewers (the last push's answer; true until one came). */
  readonly watched: () => boolean;
  /**
   * The XADD request's round trip, and the push's (runner to viewers), as estimated: the push's
   * should leave out the time the object was busy with earlier pushes (createBaseDelayEstimate).
   */
  readonly request: RoundTripEstimate;
  readonly delivery: RoundTripEstimate;
}

// The most commands saved up, and owed (liveFlushTiming's credit).
const CREDIT_MAX = 2;
const DEBT_MAX = 10;

/**
 * Batches adaptively, for a writer whose lines reach viewers by push: the oldest waiting line
 * may wait what is left of the latency target once the write and the push are paid for, and
 * the batch goes as soon as the next line, at the rate lines have been coming, would arrive
 * too late to join it; a lone line after a quiet spell goes at once. Using the target's slack
 * is what keeps the cost down: a build printing 10 lines every 50 ms sends half as many XADDs
 * and pushes (and its object half as many fan-outs) as it would sending each at once, and its
 * lines still reach viewers well within 100 ms. Batches smaller than `budgetLines` are never
 * closer than `minSpacingMs`: with round trips of ~25 ms (Upstash in the runner's region) the
 * target alone gives the same spacing; with slow round trips the target is out of reach
 * anyway, and shrinking batches then would only multiply the commands (and the load). Nobody
 * watching, lines wait longer.
 */
export function liveFlushTiming(options: LiveFlushTimingOptions): FlushTiming {
  const targetMs = options.targetMs ?? 80;
  const budgetLines = options.budgetLines ?? 7;
  const minSpacingMs = options.minSpacingMs ?? 75;
  const unwatchedMs = options.unwatchedMs ?? 250;
  // Smoothed time between arrivals of lines, capped: after a quiet spell the next line is "late".
  // Lines appended at the same instant (one chunk of a build's output, split into lines) are
  // one arrival: counted as gaps of 0 they made a build that prints 10 lines every 50 ms look
  // as if its next line were due at once, and each batch waited out the whole deadline
  // (some 70 ms with local round trips) for a chunk due after it.
  let gapMs = targetMs;
  let gapSeen = false;
  let lastLineAt = Number.NEGATIVE_INFINITY;
  let lastBatchAt = Number.NEGATIVE_INFINITY;
  // Commands the lines have paid for and batches not spent yet, in lines: every line pays
  // one, every batch spends `budgetLines`. A batch that goes before the spacing must be paid
  // for, so a mix of those and small batches spaced out stays within the budget. Bounded both
  // ways: a quiet spell saves nothing up, and the small batches of a slow trickle run up no
  // debt that would keep the next burst to the spacing for long (the bound is loose: each
  // command it forgives is one over the budget). Kept in lines, not commands: seven lines of
  // 1/7 each add up to 0.9999999999999998 in floating point, so a trickle's batch of exactly
  // `budgetLines` never counted as paid for.
  let credit = 0;
  return {
    lineAppended(at) {
      if (at > lastLineAt) {
        const gap = Math.min(targetMs, at - lastLineAt);
        // The first gap seen is the build's rhythm so far, as a round-trip estimate takes its
        // first sample: smoothed from the initial guess, the first few chunks of a build went
        // alone, each a fan-out, while the estimate came down to it.
        gapMs = gapSeen ? 0.8 * gapMs + 0.2 * gap : gap;
        gapSeen = lastLineAt > Number.NEGATIVE_INFINITY;
      }
      lastLineAt = at;
      credit = Math.min(CREDIT_MAX * budgetLines, credit + 1);
    },
    batchSent(at) {
      lastBatchAt = at;
      credit = Math.max(-DEBT_MAX * budgetLines, credit - budgetLines);
    },
    delayMs(oldestAt, at, pendingLines) {
      if (!options.watched()) return oldestAt + unwatchedMs - at;
      const deadline = oldestAt + targetMs - options.request.ms - options.delivery.ms;
      // The next line is due a gap after the last one (any moment, once that has passed): if
      // that is after the deadline, it could not join this batch, which goes now.
      const nextLineAt = Math.max(at, lastLineAt + gapMs);
      const sendAt = nextLineAt > deadline ? at : deadline;
      // A batch that pays its share of the command budget need not keep the spacing, while the
      // batches before it owe less than one command (credit counts this batch's lines); to an
      // object that paces its fan-out it goes at once. Owing up to one is what a trickle needs:
      // a build's first line goes alone, and a trickle of exactly `budgetLines` lines per batch
      // never pays that back. Owing none, a trickle of one line every 10 ms went by the
      // spacing's timer, not as each batch's 7th line came; the timer ran ahead of a line a
      // little late, and from then on each batch's oldest line had waited close to 70 ms
      // rather than 60 (bench:ingest, pushed trickle: p99 ~101 ms newline to viewer).
      if (pendingLines >= budgetLines && credit > 0) return options.eager?.() ? 0 : sendAt - at;
      return Math.max(sendAt, lastBatchAt + minSpacingMs) - at;
    },
  };
}
