import { describe, expect, it } from "vitest";
import { createLineBuffer } from "../../worker-build-runner/line-buffer.ts";

describe("LineBuffer", () => {
  it("joins a line split across chunks", () => {
    const buffer = createLineBuffer();
    expect(buffer.push("par")).toEqual([]);
    expect(buffer.push("tial\n")).toEqual(["partial"]);
  });

  it("returns every line a chunk completes, in order", () => {
    const buffer = createLineBuffer();
    expect(buffer.push("a\nb\nc")).toEqual(["a", "b"]);
    expect(buffer.push("\n")).toEqual(["c"]);
  });

  it("gives the unterminated last line on end()", () => {
    const buffer = createLineBuffer();
    expect(buffer.push("no-newline")).toEqual([]);
    expect(buffer.end()).toEqual(["no-newline"]);
    expect(buffer.end()).toEqual([]);
  });

  it("treats \\r\\n as a line end even when split between chunks, and keeps a lone \\r", () => {
    const buffer = createLineBuffer();
    expect(buffer.push("windows\r")).toEqual([]);
    expect(buffer.push("\nbar 10%\rbar 100%\n")).toEqual(["windows", "bar 10%\rbar 100%"]);
  });

  it("keeps empty lines (the sanitizer decides what is dropped)", () => {
    expect(createLineBuffer().push("a\n\nb\n")).toEqual(["a", "", "b"]);
  });

  it("decodes UTF-8 split inside a character", () => {
    const buffer = createLineBuffer();
    const bytes = new TextEncoder().encode("héllo 🚀\n");
    const lines = [...bytes].flatMap((byte) => buffer.push(Uint8Array.of(byte)));
    expect(lines).toEqual(["héllo 🚀"]);
  });

  it("cuts a line that never ends into bounded pieces, preferring a space", () => {
    const buffer = createLineBuffer({ maxLineLength: 100 });
    const words = Array.from({ length: 60 }, (_, i) => `w${i}`).join(" ");
    const lines = buffer.push(words);
    expect(lines.length).toBeGreaterThan(0);
    for (const line of lines) expect(line.length).toBeLessThanOrEqual(100);
    const rest = buffer.end();
    expect([...lines, ...rest].join("")).toBe(words);
    // no word is cut in two
    for (const line of lines) expect(line.endsWith(" ")).toBe(true);
  });

  it("hard-cuts a line with no space without splitting a surrogate pair", () => {
    const buffer = createLineBuffer({ maxLineLength: 10 });
    const text = "abcdefghi🚀xyz";
    const lines = [...buffer.push(text), ...buffer.end()];
    expect(lines.join("")).toBe(text);
    expect(lines[0]).toBe("abcdefghi");
    for (const line of lines) expect(line.toWellFormed()).toBe(line);
  });

  it("bounds memory for a long line delivered in many small chunks", () => {
    const buffer = createLineBuffer({ maxLineLength: 1000 });
    let emitted = 0;
    for (let i = 0; i < 10_000; i++) emitted += buffer.push("x".repeat(100)).length;
    expect(emitted).toBe(999);
    expect(buffer.end()).toEqual(["x".repeat(1000)]);
  });

  it("in truncate mode gives exactly one line per input line", () => {
    const buffer = createLineBuffer({ maxLineLength: 10, overflow: "truncate" });
    const lines = [
      ...buffer.push("short\n"),
      ...buffer.push("x".repeat(35)),
      ...buffer.push(`${"y".repeat(20)}\nnext\n`),
      ...buffer.end(),
    ];
    expect(lines).toEqual(["short", "x".repeat(10), "next"]);
  });

  it("rejects a nonsensical bound", () => {
    expect(() => createLineBuffer({ maxLineLength: 0 })).toThrow(RangeError);
  });
});
