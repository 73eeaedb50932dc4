import { describe, expect, it } from "vitest";
import {
  createRoundTripEstimate,
  liveFlushTiming,
} from "../../worker-build-runner/flush-timing.ts";
import type { FlushTiming } from "../../worker-build-runner/redis-writer.ts";

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

  it("sends a batch that carries its share of the command budget at once, however soon after the last", () => {
    const timing = liveFlushTiming({ watched: () => true, ...estimates(21, 5) });
    // A build printing 10 lines at a time every 50 ms (bench:fanout's load): nothing is gained
    // by holding a batch of 10 back, and before this rule it waited up to 70 ms for the spacing.
    const { waits, batches } = simulate(timing, {
      lines: 1_000,
      lineAt: (i) => Math.floor(i / 10) * 50,
      requestMs: 21,
    });
    expect(Math.max(...waits)).toBe(0);
    expect(batches).toBe(100);
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
