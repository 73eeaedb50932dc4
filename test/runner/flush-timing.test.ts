import { describe, expect, it } from "vitest";
import {
  createBaseDelayEstimate,
  createRoundTripEstimate,
  liveFlushTiming,
  type RoundTripEstimate,
} from "../../worker-build-runner/flush-timing.ts";
import type { FlushTiming } from "../../worker-build-runner/redis-writer.ts";
import { seededRandom } from "../support/seeded-random.ts";

/**
 * Drives a flush timing on a simulated clock as the writer does: lines come at `lineAt(i)`, and
 * the lines waiting go out as one batch as soon as `delayMs` says so (one request in flight at
 * a time, answered after `requestMs`). Returns each line's wait before its batch went out, and
 * how many batches there were.
 */
function simulate(
  timing: FlushTiming,
  options: { lines: number; lineAt: (i: number) => number; requestMs: number },
) {
  const waits: number[] = [];
  let batches = 0;
  let pending: number[] = [];
  let busyUntil = Number.NEGATIVE_INFINITY;
  let next = 0;
  const end = options.lineAt(options.lines - 1) + 10_000;
  for (let at = 0; at <= end && waits.length < options.lines; at++) {
    while (next < options.lines && options.lineAt(next) <= at) {
      timing.lineAppended?.(at);
      pending.push(at);
      next++;
    }
    const oldest = pending[0];
    if (oldest === undefined || at < busyUntil || timing.delayMs(oldest, at, pending.length) > 0)
      continue;
    timing.batchSent?.(at);
    batches++;
    for (const appendedAt of pending) waits.push(at - appendedAt);
    pending = [];
    busyUntil = at + options.requestMs;
  }
  return { waits, batches };
}

function estimates(requestMs: number, deliveryMs: number) {
  const request = createRoundTripEstimate(requestMs);
  const delivery = createRoundTripEstimate(deliveryMs);
  for (let i = 0; i < 20; i++) {
    request.observe(requestMs);
    delivery.observe(deliveryMs);
  }
  return { request, delivery };
}

describe("liveFlushTiming", () => {
  it("keeps a watched trickle (a line every 10 ms) at most 150 commands per 1,000 lines, within the latency target", () => {
    const timing = liveFlushTiming({ watched: () => true, ...estimates(21, 5) });
    const { waits, batches } = simulate(timing, {
      lines: 1_000,
      lineAt: (i) => i * 10,
      requestMs: 21,
    });
    expect(batches).toBeLessThanOrEqual(150);
    // Newline to viewer: the wait, the XADD, the push.
    expect(Math.max(...waits) + 21 + 5).toBeLessThanOrEqual(100);
  });

  it("batches a build printing 10 lines every 50 ms by the latency target, not by the spacing: half the commands, lines within the target", () => {
    const timing = liveFlushTiming({ watched: () => true, ...estimates(21, 5) });
    const { waits, batches } = simulate(timing, {
      lines: 1_000,
      lineAt: (i) => Math.floor(i / 10) * 50,
      requestMs: 21,
    });
    // Two entries' lines per XADD and push, where sending each at once would make 100: all
    // but the first, which goes at once (the gap expected before any is seen is the target,
    // so a line after a quiet spell goes at once).
    expect(batches).toBeLessThanOrEqual(51);
    // Newline to viewer: the wait, the XADD, the push, within the 80 ms target.
    expect(Math.max(...waits) + 21 + 5).toBeLessThanOrEqual(80);
  });

  it("sends two entries of a build printing 10 lines every 50 ms as the second comes, not at the deadline (lines printed together are one arrival)", () => {
    // Round trips as on one machine or in one region: the deadline is some 70 ms after a
    // batch's first line, yet the next chunk of output is due 50 ms after the last one, after
    // that deadline: waiting on for it would hold the batch's lines 20 ms for nothing.
    const timing = liveFlushTiming({ watched: () => true, ...estimates(3, 8) });
    const { waits, batches } = simulate(timing, {
      lines: 1_000,
      lineAt: (i) => Math.floor(i / 10) * 50,
      requestMs: 3,
    });
    expect(batches).toBeLessThanOrEqual(51);
    // No line waits for the chunk after its batch's second (the last chunk waits out the
    // deadline for one that never comes).
    expect(Math.max(...waits.slice(0, -10))).toBeLessThanOrEqual(50);
    expect(Math.max(...waits)).toBeLessThanOrEqual(80 - 3 - 8);
  });

  it("sends each chunk of a build printing 10 lines every 50 ms at once to an object that paces its fan-out, and a trickle still within 150 commands per 1,000 lines", () => {
    let paced = true;
    const timing = liveFlushTiming({ watched: () => true, eager: () => paced, ...estimates(3, 8) });
    const chunks = simulate(timing, {
      lines: 1_000,
      lineAt: (i) => Math.floor(i / 10) * 50,
      requestMs: 3,
    });
    // One XADD and push per chunk (100 per 1,000 lines, within the budget), and no line waits.
    expect(chunks.batches).toBe(100);
    expect(Math.max(...chunks.waits)).toBe(0);
    // A trickle's batches still pay for themselves: 7 lines each, as they come.
    const trickle = simulate(
      liveFlushTiming({ watched: () => true, eager: () => paced, ...estimates(3, 8) }),
      { lines: 1_000, lineAt: (i) => i * 10, requestMs: 3 },
    );
    expect(trickle.batches).toBeLessThanOrEqual(150);
    expect(Math.max(...trickle.waits)).toBeLessThanOrEqual(80 - 3 - 8);
    // The object no longer pacing (its audience shrank): chunks pair again.
    paced = false;
    const paired = simulate(timing, {
      lines: 1_000,
      lineAt: (i) => 60_000 + Math.floor(i / 10) * 50,
      requestMs: 3,
    });
    expect(paired.batches).toBeLessThanOrEqual(51);
  });

  it("lets a batch of 7 lines or more go sooner than the spacing when the target needs it", () => {
    // 10 lines every 30 ms: batches of 20 go every 60 ms, inside the 75 ms spacing.
    const timing = liveFlushTiming({ watched: () => true, ...estimates(21, 5) });
    const { waits } = simulate(timing, {
      lines: 1_000,
      lineAt: (i) => Math.floor(i / 10) * 30,
      requestMs: 21,
    });
    expect(Math.max(...waits) + 21 + 5).toBeLessThanOrEqual(80);
    // A line every 9 ms: a batch of exactly 7 pays its share and goes as its 7th line comes,
    // 54 ms after its first, not when the spacing has passed (at 63 ms, with 8 lines).
    const trickle = simulate(liveFlushTiming({ watched: () => true, ...estimates(21, 5) }), {
      lines: 1_000,
      lineAt: (i) => i * 9,
      requestMs: 21,
    });
    // (The last lines wait out the spacing for a line that never comes.)
    expect(Math.max(...trickle.waits.slice(0, -10))).toBeLessThanOrEqual(54);
    expect(trickle.batches).toBeLessThanOrEqual(150);
  });

  it("sends a trickle's batch as its 7th line comes when lines come a little late: the spacing's timer does not run ahead of them", () => {
    // A line every 10 ms, each 0-2 ms late as a timer is: batches of 7 lines by the spacing
    // alone would go as the timer fires, ahead of a late 7th line, and from then on hold each
    // batch's oldest line nearly 70 ms.
    for (const seed of [1, 2, 3]) {
      const random = seededRandom(seed);
      const times = Array.from({ length: 1_000 }, (_, i) => i * 10 + Math.floor(random() * 3));
      const { waits, batches } = simulate(
        liveFlushTiming({ watched: () => true, ...estimates(21, 5) }),
        { lines: 1_000, lineAt: (i) => times[i] ?? 0, requestMs: 21 },
      );
      expect(batches, `seed ${seed}`).toBeLessThanOrEqual(150);
      expect(Math.max(...waits.slice(0, -10)), `seed ${seed}`).toBeLessThanOrEqual(62);
    }
  });

  it("keeps an irregular watched trickle (a line every 10 ms on average, at random) within 150 commands per 1,000 lines", () => {
    for (const seed of [1, 2, 3, 4]) {
      const timing = liveFlushTiming({ watched: () => true, ...estimates(21, 5) });
      // Arrivals of a Poisson process: gaps exponential with a mean of 10 ms.
      const random = seededRandom(seed);
      const times: number[] = [];
      for (let i = 0, at = 0; i < 1_000; i++) {
        at += -Math.log(1 - random()) * 10;
        times.push(Math.round(at));
      }
      const { batches } = simulate(timing, {
        lines: 1_000,
        lineAt: (i) => times[i] ?? 0,
        requestMs: 21,
      });
      expect(batches, `seed ${seed}`).toBeLessThanOrEqual(150);
    }
  });

  it("does not multiply the commands when round trips are slow or jittery", () => {
    // Estimates that leave no time to wait (a loaded machine), requests still answered quickly.
    const timing = liveFlushTiming({ watched: () => true, ...estimates(60, 40) });
    const { batches } = simulate(timing, { lines: 1_000, lineAt: (i) => i * 10, requestMs: 21 });
    expect(batches).toBeLessThanOrEqual(150);
  });

  it("sends a line after a quiet spell within the latency target, and nothing waits longer", () => {
    const timing = liveFlushTiming({ watched: () => true, ...estimates(21, 5) });
    // A burst, then single lines a second apart.
    const { waits } = simulate(timing, {
      lines: 30,
      lineAt: (i) => (i < 20 ? i : 1_000 * (i - 19)),
      requestMs: 21,
    });
    expect(Math.max(...waits) + 21 + 5).toBeLessThanOrEqual(95);
  });

  it("lets lines wait longer while nobody watches", () => {
    const timing = liveFlushTiming({ watched: () => false, ...estimates(21, 5) });
    const { waits, batches } = simulate(timing, {
      lines: 1_000,
      lineAt: (i) => i * 10,
      requestMs: 21,
    });
    expect(batches).toBeLessThanOrEqual(45);
    expect(Math.max(...waits)).toBeLessThanOrEqual(250);
  });
});

describe("createBaseDelayEstimate", () => {
  it("is the least round trip of the window, the initial guess before any, and forgets one older than the window", () => {
    let now = 0;
    const estimate = createBaseDelayEstimate(10, { windowMs: 1_000, now: () => now });
    expect(estimate.ms).toBe(10);
    estimate.observe(30);
    expect(estimate.ms).toBe(30);
    now = 100;
    estimate.observe(5);
    now = 200;
    estimate.observe(50);
    estimate.observe(40);
    expect(estimate.ms).toBe(5);
    // The 5 ms sample leaves the window; the least of those after it is 40.
    now = 1_150;
    expect(estimate.ms).toBe(40);
    // Every sample is old: the newest stands until another comes.
    now = 5_000;
    expect(estimate.ms).toBe(40);
    estimate.observe(60);
    expect(estimate.ms).toBe(60);
  });

  it("keeps a build printing 10 lines every 50 ms paired while the object's fan-outs hold its answers back", () => {
    // The push's answer waits while the object fans out the push before it: at 1,000 viewers
    // some 40-50 ms. Round trips then read 45 ms where the path takes 4.
    const stretched = (estimate: RoundTripEstimate): RoundTripEstimate => {
      estimate.observe(4);
      for (let i = 0; i < 20; i++) estimate.observe(45);
      return estimate;
    };
    const run = (delivery: RoundTripEstimate) => {
      const request = createRoundTripEstimate(5);
      for (let i = 0; i < 20; i++) request.observe(5);
      return simulate(liveFlushTiming({ watched: () => true, request, delivery }), {
        lines: 1_000,
        lineAt: (i) => Math.floor(i / 10) * 50,
        requestMs: 5,
      });
    };
    const base = run(stretched(createBaseDelayEstimate(10)));
    // Two chunks per XADD and push (one fan-out for both), the first one alone.
    expect(base.batches).toBeLessThanOrEqual(51);
    expect(Math.max(...base.waits)).toBeLessThanOrEqual(80 - 5 - 4);
    // The smoothed estimate of the same round trips leaves no time to wait: every chunk goes
    // alone, twice the fan-outs into an object already busy with them.
    const smoothed = run(stretched(createRoundTripEstimate(10)));
    expect(smoothed.batches).toBeGreaterThanOrEqual(95);
  });
});
