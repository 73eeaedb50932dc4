import type { LogLine, StreamEntry } from "./entry.ts";

/**
 * Server-Sent Events framing, per the WHATWG spec. Written here rather than with Hono's
 * streamSSE because the Durable Object encodes each batch once and writes the same bytes to
 * every viewer's stream; streamSSE encodes per response.
 */
export interface SseEvent {
  readonly id?: string;
  readonly event?: string;
  readonly data: string;
}

const LINE_BREAK = /[\r\n]/;

export class SseFieldError extends Error {
  override readonly name = "SseFieldError";
}

/** One event as text. `id` and `event` may not hold line breaks; `data` is split over `data:` lines. */
export function formatSseEvent(event: SseEvent): string {
  let out = "";
  if (event.id !== undefined) {
    if (LINE_BREAK.test(event.id) || event.id.includes("\u0000"))
      throw new SseFieldError("an SSE id may not contain CR, LF or NUL");
    out += `id: ${event.id}\n`;
  }
  if (event.event !== undefined) {
    if (LINE_BREAK.test(event.event))
      throw new SseFieldError("an SSE event name may not contain CR or LF");
    out += `event: ${event.event}\n`;
  }
  for (const line of event.data.split(/\r\n|\r|\n/)) out += `data: ${line}\n`;
  return `${out}\n`;
}

/** A comment line: ignored by EventSource, but it keeps proxies from closing an idle stream. */
export const HEARTBEAT_FRAME = ": heartbeat\n\n";

/** What a `log` event's data holds: the lines of one stream entry, in order. */
export interface LogEventData {
  readonly lines: readonly LogLine[];
}

/**
 * The `log` event for `lines` (consecutive lines of one entry): `id:` is the cursor of the
 * last line, so a viewer that reconnects with it as Last-Event-ID resumes right after.
 */
export function formatLogEvent(lines: readonly LogLine[]): string {
  const last = lines.at(-1);
  if (!last) return "";
  const data: LogEventData = { lines };
  return formatSseEvent({ id: last.cursor, event: "log", data: JSON.stringify(data) });
}

/** The `log` event for an entry's lines after line `afterIndex` (-1 for all of them). */
export function formatEntryEvent(entry: StreamEntry, afterIndex = -1): string {
  return formatLogEvent(afterIndex < 0 ? entry.lines : entry.lines.slice(afterIndex + 1));
}

/** The final event: the job's status. The server closes the stream right after it. */
export function formatDoneEvent(status: string, lastCursor: string | null): string {
  return formatSseEvent({
    ...(lastCursor === null ? {} : { id: lastCursor }),
    event: "done",
    data: JSON.stringify({ status }),
  });
}
