import { describe, expect, it } from "vitest";
import { type ParsedSseEvent, SseParser } from "../../src/client/sse-parser.ts";

function parse(chunks: readonly string[], lastEventId = "") {
  const events: ParsedSseEvent[] = [];
  const comments: string[] = [];
  const retries: number[] = [];
  const parser = new SseParser(
    {
      onEvent: (event) => events.push(event),
      onComment: (text) => comments.push(text),
      onRetry: (ms) => retries.push(ms),
    },
    lastEventId,
  );
  for (const chunk of chunks) parser.feed(chunk);
  return { events, comments, retries, lastEventId: parser.lastEventId };
}

describe("SseParser", () => {
  it("reads the server's frames: id, event, data, the heartbeat comment and retry", () => {
    const text =
      'retry: 2000\n\n: heartbeat\n\nid: 1-0:2\nevent: log\ndata: {"lines":[]}\n\nevent: done\ndata: {"status":"ready"}\n\n';
    const { events, comments, retries } = parse([text]);
    expect(retries).toEqual([2000]);
    expect(comments).toEqual(["heartbeat"]);
    expect(events).toEqual([
      { event: "log", data: '{"lines":[]}', lastEventId: "1-0:2", hasId: true },
      // The id carries over to the next event, as in EventSource; this one did not set it.
      { event: "done", data: '{"status":"ready"}', lastEventId: "1-0:2", hasId: false },
    ]);
  });

  it("gives the same events however the bytes are split, CRLF across chunks included", () => {
    const text = "id: 5-0:0\r\nevent: log\r\ndata: a\r\ndata: b\r\n\r\ndata: c\r\r";
    const whole = parse([text]).events;
    expect(whole).toEqual([
      { event: "log", data: "a\nb", lastEventId: "5-0:0", hasId: true },
      { event: "message", data: "c", lastEventId: "5-0:0", hasId: false },
    ]);
    for (let i = 1; i < text.length; i++)
      expect(parse([text.slice(0, i), text.slice(i)]).events).toEqual(whole);
    expect(parse([...text]).events).toEqual(whole);
  });

  it("dispatches nothing without data, keeps an id without NUL, and ignores unknown fields", () => {
    const { events, lastEventId } = parse(
      ["id: 7-0:1\n\nid: bad\u0000id\nfoo: bar\ndata\n\n"],
      "1-0:0",
    );
    expect(events).toEqual([{ event: "message", data: "", lastEventId: "7-0:1", hasId: false }]);
    expect(lastEventId).toBe("7-0:1");
  });
});
