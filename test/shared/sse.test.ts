import { describe, expect, it } from "vitest";
import type { LogLine } from "../../src/shared/entry.ts";
import {
  formatDoneEvent,
  formatEntryEvent,
  formatSseEvent,
  HEARTBEAT_FRAME,
} from "../../src/shared/sse.ts";

const line = (cursor: string, text: string): LogLine => ({
  cursor,
  ts: "2026-11-21T12:00:00.000Z",
  source: "stdout",
  phase: "build",
  text,
});

describe("SSE framing", () => {
  it("writes id, event and data fields and a blank line", () => {
    expect(formatSseEvent({ id: "1-0:0", event: "log", data: "hello" })).toBe(
      "id: 1-0:0\nevent: log\ndata: hello\n\n",
    );
  });

  it("splits multi-line data over several data fields", () => {
    expect(formatSseEvent({ data: "a\nb\r\nc\rd" })).toBe("data: a\ndata: b\ndata: c\ndata: d\n\n");
  });

  it.each(["1\n2", "1\r2", "1\u00002"])("rejects a line break or NUL in an id (%j)", (id) => {
    expect(() => formatSseEvent({ id, data: "x" })).toThrow(/SSE id/);
  });

  it.each(["a\nb", "a\rb"])("rejects a line break in an event name (%j)", (event) => {
    expect(() => formatSseEvent({ event, data: "x" })).toThrow(/event name/);
  });

  it("frames a heartbeat as a comment", () => {
    expect(HEARTBEAT_FRAME).toBe(": heartbeat\n\n");
  });

  it("frames an entry as one log event whose id is its last line's cursor", () => {
    const entry = {
      id: "5-1",
      lines: [line("5-1:0", "a"), line("5-1:1", "b"), line("5-1:2", "c")],
    };
    // Each line as JSON, in the order its fields are written.
    const a =
      '{"cursor":"5-1:0","ts":"2026-11-21T12:00:00.000Z","source":"stdout","phase":"build","text":"a"}';
    const b =
      '{"cursor":"5-1:1","ts":"2026-11-21T12:00:00.000Z","source":"stdout","phase":"build","text":"b"}';
    const c =
      '{"cursor":"5-1:2","ts":"2026-11-21T12:00:00.000Z","source":"stdout","phase":"build","text":"c"}';
    expect(formatEntryEvent(entry)).toBe(
      `id: 5-1:2\nevent: log\ndata: {"lines":[${a},${b},${c}]}\n\n`,
    );
    expect(formatEntryEvent(entry, 0)).toBe(
      `id: 5-1:2\nevent: log\ndata: {"lines":[${b},${c}]}\n\n`,
    );
    expect(formatEntryEvent(entry, 2)).toBe("");
  });

  it("keeps text with line breaks or SSE syntax inside one data field (JSON escapes them)", () => {
    const event = formatEntryEvent({ id: "1-0", lines: [line("1-0:0", "data: fake\n\nid: 9")] });
    expect(event.split("\n").filter((l) => l.startsWith("data: "))).toHaveLength(1);
  });

  it("frames done with the status", () => {
    expect(formatDoneEvent("ready", "7-0:3")).toBe(
      'id: 7-0:3\nevent: done\ndata: {"status":"ready"}\n\n',
    );
    expect(formatDoneEvent("failed", null)).toBe('event: done\ndata: {"status":"failed"}\n\n');
  });
});
