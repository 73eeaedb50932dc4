import { describe, expect, it } from "vitest";
import {
  compareEntryIds,
  compareToCursor,
  decodeEntry,
  EntryFormatError,
  encodeEntryFields,
  type LogRecord,
  parseCursor,
} from "../../src/shared/entry.ts";

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

describe("step marks (entry format v3)", () => {
  const ts = "2026-12-02T06:00:00.000Z";
  const start = { i: 0, name: "Installing", event: "start" } as const;
  const end = {
    i: 0,
    name: "Installing",
    event: "end",
    status: "failed",
    exit: 2,
    ms: 1500,
  } as const;
  const records: readonly LogRecord[] = [
    { ts, source: "system", phase: "install", text: "--- Installing ---", step: start },
    { ts, source: "stdout", phase: "install", text: "added 1 package" },
    {
      ts,
      source: "system",
      phase: "install",
      text: "Installing failed with exit code 2",
      step: end,
    },
  ];

  it("writes the lowest version that holds the entry: 1 plain, 2 with spans, 3 with a mark", () => {
    const [marked, plain] = records as [LogRecord, LogRecord];
    expect(encodeEntryFields([plain]).v).toBe("1");
    const styled = { ...plain, spans: [{ s: 0, e: 5, c: "b" }] };
    expect(encodeEntryFields([styled]).v).toBe("2");
    expect(encodeEntryFields([styled, marked]).v).toBe("3");
  });

  it("reads the marks back on their lines, with line numbers, as every reader passes them on", () => {
    const entry = decodeEntry("5-0", encodeEntryFields(records, 10));
    expect(entry.lines.map(({ step, n }) => ({ step, n }))).toEqual([
      { step: start, n: 10 },
      { step: undefined, n: 11 },
      { step: end, n: 12 },
    ]);
    expect(entry.lines[1]).not.toHaveProperty("step");
  });

  it("reads entries written before marks existed (v1, v2) as they were", () => {
    const v1 = { v: "1", lines: JSON.stringify([records[1]]), n: "0" };
    const v2 = {
      v: "2",
      lines: JSON.stringify([{ ...records[1], spans: [{ s: 0, e: 5, c: "b" }] }]),
    };
    expect(decodeEntry("1-0", v1).lines[0]).toEqual({ ...records[1], cursor: "1-0:0", n: 0 });
    expect(decodeEntry("2-0", v2).lines[0]?.spans).toEqual([{ s: 0, e: 5, c: "b" }]);
  });

  it.each([
    ["a mark on a build's own output", { ...records[1], step: start }],
    ["an unknown event", { ...records[0], step: { ...start, event: "pause" } }],
    ["an index past the spec's 50 steps", { ...records[0], step: { ...start, i: 50 } }],
    ["an end without its status", { ...records[2], step: { ...end, status: "maybe" } }],
    ["a negative duration", { ...records[2], step: { ...end, ms: -1 } }],
  ])("refuses %s", (_, record) => {
    expect(() => decodeEntry("3-0", { v: "3", lines: JSON.stringify([record]) })).toThrow(
      EntryFormatError,
    );
  });

  it("passes on a mark's own fields only", () => {
    const padded = { ...records[0], step: { ...start, html: "<b>x</b>" } };
    const line = decodeEntry("4-0", { v: "3", lines: JSON.stringify([padded]) }).lines[0];
    expect(line?.step).toEqual(start);
  });
});
