import { EventSource } from "eventsource";
import type { LogLine } from "../../src/shared/entry.ts";
import { sseReader } from "./sse.ts";

/** Where a job's log is read from, as a signed-in owner reads it. */
export interface LogApi {
  readonly workerUrl: string;
  readonly token: string;
}

const headersOf = (api: LogApi) => ({ Authorization: `Bearer ${api.token}` });
const streamUrl = (api: LogApi, jobId: string, after: string | null) =>
  `${api.workerUrl}/api/jobs/${jobId}/logs/stream?after=${after ?? "0-0:0"}`;

/** What a live viewer saw, until the `done` event. */
export interface ViewerResult {
  readonly texts: readonly string[];
  readonly status: string;
  /** Connections it opened (1 + its reconnects). */
  readonly connections: number;
}

function randomBetween(lowMs: number, highMs: number): number {
  return lowMs + Math.floor(Math.random() * (highMs - lowMs));
}

/**
 * A viewer with a real EventSource (the `eventsource` package, WHATWG-conformant: it reconnects
 * by itself with Last-Event-ID when a stream drops). With `reconnects`, it also closes its
 * source that many times at random moments and opens a new one after its last id, as a
 * person reloading the page does.
 */
export function followWithEventSource(
  api: LogApi,
  jobId: string,
  options: { readonly reconnects?: number; readonly timeoutMs?: number } = {},
): Promise<ViewerResult> {
  return new Promise((resolve, reject) => {
    const texts: string[] = [];
    let lastId: string | null = null;
    let connections = 0;
    let reconnectsLeft = options.reconnects ?? 0;
    let source: EventSource | undefined;
    let reconnectTimer: ReturnType<typeof setTimeout> | undefined;
    const finish = (error: Error | null, status = "") => {
      clearTimeout(reconnectTimer);
      clearTimeout(deadline);
      source?.close();
      if (error) reject(error);
      else resolve({ texts, status, connections });
    };
    const deadline = setTimeout(
      () => finish(new Error(`no done event for ${jobId} after ${texts.length} lines`)),
      options.timeoutMs ?? 300_000,
    );
    const open = () => {
      connections += 1;
      source = new EventSource(streamUrl(api, jobId, lastId), {
        fetch: (input, init) =>
          fetch(input, { ...init, headers: { ...init?.headers, ...headersOf(api) } }),
      });
      source.addEventListener("log", (event) => {
        for (const line of (JSON.parse(event.data) as { lines: LogLine[] }).lines)
          texts.push(line.text);
        lastId = event.lastEventId;
      });
      source.addEventListener("done", (event) => {
        finish(null, (JSON.parse(event.data) as { status: string }).status);
      });
      // EventSource gives up for good on an error status (a 503 while Redis is out): open a
      // new one after a pause, as the viewer page does.
      source.addEventListener("error", () => {
        if (source?.readyState !== EventSource.CLOSED) return;
        clearTimeout(reconnectTimer);
        reconnectTimer = setTimeout(open, 1_000);
      });
      if (reconnectsLeft > 0) {
        reconnectTimer = setTimeout(
          () => {
            reconnectsLeft -= 1;
            source?.close();
            open();
          },
          randomBetween(100, 1_500),
        );
      }
    };
    open();
  });
}

/**
 * A viewer on a slow link: reads the stream at `bytesPerSecond`. The Worker closes a viewer that
 * falls too far behind; this one then reconnects after its last id, as EventSource would.
 */
export async function followSlowly(
  api: LogApi,
  jobId: string,
  bytesPerSecond: number,
  timeoutMs = 300_000,
): Promise<ViewerResult> {
  const texts: string[] = [];
  let lastId: string | null = null;
  let connections = 0;
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    connections += 1;
    const response = await fetch(streamUrl(api, jobId, lastId), { headers: headersOf(api) }).catch(
      () => null,
    );
    if (response === null || !response.ok || response.body === null) {
      await response?.body?.cancel();
      await new Promise((resolve) => setTimeout(resolve, 1_000));
      continue;
    }
    const reader = sseReader(throttled(response, bytesPerSecond));
    for (;;) {
      const frame = await reader.next();
      if (frame === null) break;
      if (frame.event === "log" && frame.data !== undefined) {
        for (const line of (JSON.parse(frame.data) as { lines: LogLine[] }).lines)
          texts.push(line.text);
        lastId = frame.id ?? lastId;
      } else if (frame.event === "done" && frame.data !== undefined) {
        await reader.cancel();
        return {
          texts,
          status: (JSON.parse(frame.data) as { status: string }).status,
          connections,
        };
      }
    }
  }
  throw new Error(`the slow viewer saw no done for ${jobId} after ${texts.length} lines`);
}

function throttled(response: Response, bytesPerSecond: number): Response {
  const body = response.body;
  if (body === null) return response;
  const reader = body.getReader();
  const stream = new ReadableStream<Uint8Array>({
    async pull(controller) {
      const { value, done } = await reader.read().catch(() => ({ value: undefined, done: true }));
      if (done || value === undefined) {
        controller.close();
        return;
      }
      // Small slices, each after its share of time: what a 1 KB/s link delivers.
      for (let offset = 0; offset < value.length; offset += 256) {
        const slice = value.subarray(offset, offset + 256);
        await new Promise((resolve) => setTimeout(resolve, (slice.length / bytesPerSecond) * 1000));
        controller.enqueue(slice);
      }
    },
    async cancel() {
      await reader.cancel().catch(() => undefined);
    },
  });
  return new Response(stream, { headers: response.headers });
}

/** Every line of the history, page after page (`after` cursors, 500 a page). */
export async function readHistoryTexts(api: LogApi, jobId: string): Promise<string[]> {
  const texts: string[] = [];
  let after: string | null = null;
  for (;;) {
    const query = `limit=500&after=${after ?? "0-0:0"}`;
    const response = await fetch(`${api.workerUrl}/api/jobs/${jobId}/logs?${query}`, {
      headers: headersOf(api),
    });
    if (!response.ok) throw new Error(`history answered ${response.status}`);
    const page = (await response.json()) as {
      lines: LogLine[];
      has_more: boolean;
      cursors: { after: string | null };
    };
    for (const line of page.lines) texts.push(line.text);
    if (!page.has_more || page.lines.length === 0) return texts;
    after = page.cursors.after;
  }
}

/** The text download's lines, without the time and source columns. */
export async function readLogsTxt(api: LogApi, jobId: string): Promise<string[]> {
  const response = await fetch(`${api.workerUrl}/api/jobs/${jobId}/logs.txt`, {
    headers: headersOf(api),
  });
  if (!response.ok) throw new Error(`logs.txt answered ${response.status}`);
  const body = await response.text();
  return body
    .split("\n")
    .filter((line) => line !== "")
    .map((line) => line.replace(/^\S+ \S+\s+/, ""));
}

export async function jobStatus(
  api: LogApi,
  jobId: string,
): Promise<{ status: string; archived_at?: string | null }> {
  const response = await fetch(`${api.workerUrl}/api/jobs/${jobId}`, { headers: headersOf(api) });
  if (!response.ok) throw new Error(`the job answered ${response.status}`);
  return (await response.json()) as { status: string; archived_at?: string | null };
}
