import { describe, expect, it } from "vitest";
import { exponentialBackoff } from "../../src/shared/backoff.ts";

describe("exponentialBackoff()", () => {
  it("doubles from the first delay and stops at the cap", () => {
    const delay = exponentialBackoff({ initial: 5, max: 300 });
    expect([0, 1, 2, 3, 6, 7, 8, 1_000].map(delay)).toEqual([5, 5, 10, 20, 160, 300, 300, 300]);
  });

  it("adds at most the jitter's fraction, never less than the delay", () => {
    const delay = exponentialBackoff({ initial: 100, max: 1_000, jitter: 0.2 });
    for (let i = 0; i < 200; i++) {
      const value = delay(3);
      expect(value).toBeGreaterThanOrEqual(400);
      expect(value).toBeLessThan(480);
    }
  });

  it("refuses settings that make no sense, when made", () => {
    expect(() => exponentialBackoff({ initial: 0, max: 10 })).toThrow(RangeError);
    expect(() => exponentialBackoff({ initial: 20, max: 10 })).toThrow(RangeError);
    expect(() => exponentialBackoff({ initial: 1, max: 10, jitter: -1 })).toThrow(RangeError);
  });
});
