import { describe, expect, it } from "vitest";
import { compareEntryIds, compareToCursor, parseCursor } from "../../src/shared/entry.ts";

describe("entry ids and cursors", () => {
  it.each([
    ["9-0", "10-0", -1],
    ["10-0", "9-0", 1],
    ["5-9", "5-10", -1],
    ["1795268323037-0", "1795268323037-0", 0],
    ["0-0", "1-0", -1],
    ["007-0", "7-0", 0],
    ["99999999999999-1", "100000000000000-0", -1],
  ])("orders %s against %s numerically", (a, b, expected) => {
    expect(Math.sign(compareEntryIds(a, b))).toBe(expected);
  });

  it("orders a line against a cursor by entry, then index", () => {
    const cursor = parseCursor("10-0:3");
    if (cursor === null) throw new Error("cursor");
    expect(compareToCursor("10-0", 3, cursor)).toBe(0);
    expect(compareToCursor("10-0", 4, cursor)).toBeGreaterThan(0);
    expect(compareToCursor("10-0", 2, cursor)).toBeLessThan(0);
    expect(compareToCursor("9-5", 900, cursor)).toBeLessThan(0);
    expect(compareToCursor("11-0", 0, cursor)).toBeGreaterThan(0);
  });

  it.each(["", "1-0", "1-0:", "a-0:0", "1-0:0:0", "1234567890123456-0:0"])(
    "rejects the cursor %j",
    (text) => {
      expect(parseCursor(text)).toBeNull();
    },
  );
});
