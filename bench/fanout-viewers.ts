// SSE viewers for bench/fanout.ts: node:http streaming readers that parse frames incrementally,
// as a browser's EventSource would (including its reconnect with Last-Event-ID after a drop),
// and record every line in a DeliveryLog. node:http rather than fetch: a thousand readers on one
// event loop beside the bridge cost less without a web stream per response.
import http from "node:http";
import type { DeliveryLog, StampedLine } from "./fanout-lines.ts";
import { nowMs, parseLineText } from "./fanout-lines.ts";

export interface ViewerPoolOptions {
  /** `http://127.0.0.1:PORT` of the Worker. */
  readonly origin: string;
  /** `/api/jobs/<id>/logs/stream` */
  readonly path: string;
  /** The owner's session token (Bearer). */
  readonly token: string;
  readonly log: DeliveryLog;
  /** How many viewers the log has room for. */
  readonly count: number;
  /** Reconnects allowed per viewer after the server drops it; each is reported. */
  readonly maxReconnects: number;
}

export interface ViewerPool {
  /**
   * Opens every viewer, `concurrency` at a time; resolves once each has its first frame
   * (`retry:`) or has failed, with the number that failed (see errors()).
   */
  open(concurrency: number, timeoutMs: number): Promise<number>;
  /** Viewers that received the `done` event. */
  doneCount(): number;
  /** Streams that ended without `done` (the server dropped the viewer). */
  drops(): number;
  reconnects(): number;
  /** `log` events received, over all viewers: the writes the object made to them. */
  logEvents(): number;
  /** Frames that were not what a viewer expects (not SSE, a log event it could not read). */
  badFrames(): number;
  /** The first few errors, for the report. */
  errors(): readonly string[];
  /** Closes every stream; no reconnects after this. */
  close(): void;
}

const MAX_ERRORS_KEPT = 5;

export function createViewerPool(options: ViewerPoolOptions): ViewerPool {
  const url = new URL(options.path, options.origin);
  // Every viewer gets the same bytes: the lines of one event are decoded once, checked per viewer.
  const decoded = new Map<string, readonly StampedLine[] | null>();
  const viewers: Viewer[] = [];
  const errors: string[] = [];
  let closing = false;
  let drops = 0;
  let reconnects = 0;
  let badFrames = 0;
  let logEvents = 0;

  const noteError = (message: string): void => {
    if (errors.length < MAX_ERRORS_KEPT) errors.push(message);
  };

  const linesOf = (data: string): readonly StampedLine[] | null => {
    let lines = decoded.get(data);
    if (lines === undefined) {
      lines = decodeLogEvent(data);
      decoded.set(data, lines);
    }
    return lines;
  };

  class Viewer {
    private buffer = "";
    private lastEventId: string | undefined;
    private request: http.ClientRequest | undefined;
    private reconnectTimer: NodeJS.Timeout | undefined;
    private retryMs = 2_000;
    private attempts = 0;
    done = false;
    private readonly index: number;

    constructor(index: number) {
      this.index = index;
    }

    /** Resolves on the stream's first frame. */
    connect(timeoutMs: number): Promise<void> {
      return new Promise((resolve, reject) => {
        let settled = false;
        const settle = (error?: Error): void => {
          if (settled) return;
          settled = true;
          clearTimeout(timer);
          if (error === undefined) resolve();
          else reject(error);
        };
        const timer = setTimeout(() => {
          settle(new Error(`viewer ${this.index}: no first frame within ${timeoutMs} ms`));
          this.request?.destroy();
        }, timeoutMs);
        const headers: Record<string, string> = {
          Authorization: `Bearer ${options.token}`,
          Accept: "text/event-stream",
        };
        if (this.lastEventId !== undefined) headers["Last-Event-ID"] = this.lastEventId;
        const request = http.get(url, { headers, agent: false }, (response) => {
          if (response.statusCode !== 200) {
            let body = "";
            response.setEncoding("utf8");
            response.on("data", (chunk: string) => {
              body += chunk;
            });
            response.on("end", () =>
              settle(
                new Error(
                  `viewer ${this.index}: HTTP ${response.statusCode ?? "?"} ${body.slice(0, 200)}`,
                ),
              ),
            );
            return;
          }
          response.setEncoding("utf8");
          response.on("data", (chunk: string) => {
            this.onChunk(chunk, nowMs());
            settle();
          });
          response.on("close", () => {
            settle(new Error(`viewer ${this.index}: the stream closed before its first frame`));
            this.onStreamEnd();
          });
        });
        request.on("error", (error) => {
          settle(error);
          if (!closing) noteError(`viewer ${this.index}: ${error.message}`);
        });
        this.request = request;
      });
    }

    close(): void {
      clearTimeout(this.reconnectTimer);
      this.request?.destroy();
    }

    private onChunk(chunk: string, receivedAt: number): void {
      this.buffer += chunk;
      let start = 0;
      for (
        let end = this.buffer.indexOf("\n\n");
        end !== -1;
        end = this.buffer.indexOf("\n\n", start)
      ) {
        this.onFrame(this.buffer.slice(start, end), receivedAt);
        start = end + 2;
      }
      if (start > 0) this.buffer = this.buffer.slice(start);
    }

    private onFrame(frame: string, receivedAt: number): void {
      let event = "message";
      let data: string | undefined;
      for (const line of frame.split("\n")) {
        if (line.startsWith(":")) continue;
        const colon = line.indexOf(":");
        const field = colon === -1 ? line : line.slice(0, colon);
        const value =
          colon === -1 ? "" : line.slice(line[colon + 1] === " " ? colon + 2 : colon + 1);
        if (field === "data") data = data === undefined ? value : `${data}\n${value}`;
        else if (field === "event") event = value;
        else if (field === "id") this.lastEventId = value;
        else if (field === "retry") this.retryMs = Number(value);
      }
      if (event === "done") {
        this.done = true;
        return;
      }
      if (data === undefined) return;
      const lines = event === "log" ? linesOf(data) : null;
      if (lines === null) {
        badFrames++;
        noteError(`viewer ${this.index}: unexpected frame ${JSON.stringify(frame.slice(0, 120))}`);
        return;
      }
      logEvents++;
      for (const line of lines) options.log.receive(this.index, line, receivedAt);
    }

    private onStreamEnd(): void {
      if (closing || this.done) return;
      drops++;
      if (this.attempts >= options.maxReconnects) {
        noteError(`viewer ${this.index}: dropped by the server; out of reconnects`);
        return;
      }
      this.attempts++;
      reconnects++;
      this.buffer = "";
      this.reconnectTimer = setTimeout(() => {
        this.connect(15_000).catch((error: unknown) =>
          noteError(`viewer ${this.index}: reconnect failed: ${String(error)}`),
        );
      }, this.retryMs);
    }
  }

  for (let index = 0; index < options.count; index++) viewers.push(new Viewer(index));

  return {
    async open(concurrency, timeoutMs) {
      let next = 0;
      let failed = 0;
      const worker = async (): Promise<void> => {
        while (next < viewers.length && !closing) {
          const viewer = viewers[next++];
          if (viewer === undefined) continue;
          try {
            await viewer.connect(timeoutMs);
          } catch (error) {
            failed++;
            noteError(error instanceof Error ? error.message : String(error));
          }
        }
      };
      await Promise.all(Array.from({ length: Math.min(concurrency, viewers.length) }, worker));
      return failed;
    },
    doneCount: () => viewers.filter((viewer) => viewer.done).length,
    drops: () => drops,
    reconnects: () => reconnects,
    logEvents: () => logEvents,
    badFrames: () => badFrames,
    errors: () => errors,
    close() {
      closing = true;
      for (const viewer of viewers) viewer.close();
    },
  };
}

/** The stamped lines of a `log` event's data (`{"lines":[{text,...},...]}`), or null. */
function decodeLogEvent(data: string): readonly StampedLine[] | null {
  let parsed: unknown;
  try {
    parsed = JSON.parse(data);
  } catch {
    return null;
  }
  if (
    typeof parsed !== "object" ||
    parsed === null ||
    !("lines" in parsed) ||
    !Array.isArray(parsed.lines)
  )
    return null;
  const lines: StampedLine[] = [];
  const records: unknown[] = parsed.lines;
  for (const line of records) {
    const text =
      typeof line === "object" && line !== null && "text" in line ? line.text : undefined;
    const stamped = typeof text === "string" ? parseLineText(text) : null;
    if (stamped === null) return null;
    lines.push(stamped);
  }
  return lines;
}
