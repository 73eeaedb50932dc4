import { describe, expect, it } from "vitest";
import { alarmToRepair, alarmToSet, LOST_ALARM_MS } from "../../src/shared/alarm.ts";

describe("alarmToSet()", () => {
  const now = 1_000_000;

  it("sets one when none is stored, never before now", () => {
    expect(alarmToSet(null, now + 500, now)).toBe(now + 500);
    expect(alarmToSet(null, now - 500, now)).toBe(now);
  });

  it("moves a stored alarm earlier, never later", () => {
    expect(alarmToSet(now + 900, now + 100, now)).toBe(now + 100);
    expect(alarmToSet(now + 100, now + 900, now)).toBeNull();
    expect(alarmToSet(now + 100, now + 100, now)).toBeNull();
  });

  it("leaves a due alarm that is only a little late alone", () => {
    expect(alarmToSet(now, now + 900, now)).toBeNull();
    expect(alarmToSet(now - LOST_ALARM_MS, now + 900, now)).toBeNull();
  });

  it("sets a stored alarm long past its time anew, for now: it was lost and would block every later one", () => {
    // As in the faults suite after a workerd restart: stored 85 s ago, never fired.
    expect(alarmToSet(now - 85_000, now + 20_000, now)).toBe(now);
    expect(alarmToSet(now - LOST_ALARM_MS - 1, now + 900, now)).toBe(now);
    // Even when the caller wants it at once.
    expect(alarmToSet(now - 85_000, now - 10, now)).toBe(now);
  });
});

describe("alarmToRepair()", () => {
  const now = 1_000_000;

  it("sets a lost alarm for now, and one that is wanted and missing", () => {
    expect(alarmToRepair(now - 85_000, false, now)).toBe(now);
    expect(alarmToRepair(null, true, now)).toBe(now);
  });

  it("leaves an alarm still to come alone (a backoff stays a backoff), and sets none unwanted", () => {
    expect(alarmToRepair(now + 10_000, true, now)).toBeNull();
    expect(alarmToRepair(now - LOST_ALARM_MS, true, now)).toBeNull();
    expect(alarmToRepair(null, false, now)).toBeNull();
  });
});
