import type { LogLine } from "../../src/shared/entry.ts";

/** One SSE frame as it arrived: the raw text and its parsed fields (a comment has none). */
export interface SseFrame {
  readonly raw: string;
  readonly id?: string;
  readonly event?: string;
  readonly data?: string;
  readonly comment?: string;
  readonly retry?: number;
}

function parseFrame(raw: string): SseFrame {
  const fields: { id?: string; event?: string; data?: string[]; comment?: string; retry?: number } =
    {};
  for (const line of raw.slice(0, -2).split("\n")) {
    if (line.startsWith(":")) fields.comment = line.slice(1).trim();
    else if (line.startsWith("id: ")) fields.id = line.slice(4);
    else if (line.startsWith("event: ")) fields.event = line.slice(7);
    else if (line.startsWith("data: ")) {
      fields.data ??= [];
      fields.data.push(line.slice(6));
    } else if (line.startsWith("retry: ")) fields.retry = Number(line.slice(7));
  }
  const { data, ...rest } = fields;
  return data === undefined ? { raw, ...rest } : { raw, ...rest, data: data.join("\n") };
}

/**
 * Reads an SSE response frame by frame, at the byte level: `next()` resolves with the next
 * complete frame (text up to a blank line), or null when the server closed the stream.
 */
export function sseReader(response: Response): {
  next(): Promise<SseFrame | null>;
  nextMatching(predicate: (frame: SseFrame) => boolean): Promise<SseFrame | null>;
  cancel(): Promise<void>;
} {
  const body = response.body;
  if (body === null) throw new Error("the response has no body");
  const reader = body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  const next = async (): Promise<SseFrame | null> => {
    for (;;) {
      const end = buffer.indexOf("\n\n");
      if (end !== -1) {
        const raw = buffer.slice(0, end + 2);
        buffer = buffer.slice(end + 2);
        return parseFrame(raw);
      }
      // An aborted stream (the server dropped a slow viewer) ends it as a network error would.
      const { value, done } = await reader
        .read()
        .catch(() => ({ value: undefined, done: true as const }));
      if (done) return null;
      buffer += decoder.decode(value, { stream: true });
    }
  };
  return {
    next,
    async nextMatching(predicate) {
      for (;;) {
        const frame = await next();
        if (frame === null || predicate(frame)) return frame;
      }
    },
    async cancel() {
      await reader.cancel().catch(() => undefined);
    },
  };
}

/** The next frame that is not a heartbeat or the retry hint. */
export const isEvent = (frame: { event?: string }): boolean => frame.event !== undefined;

/** The log lines a `log` event carries (none for any other frame, or none at all). */
export function linesOf(frame: SseFrame | null): LogLine[] {
  return frame?.data ? (JSON.parse(frame.data) as { lines: LogLine[] }).lines : [];
}

/** The texts of the lines a `log` event carries. */
export function textsOf(frame: SseFrame | null): string[] {
  return linesOf(frame).map((line) => line.text);
}
