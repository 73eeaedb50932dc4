import { compareEntryIds } from "../shared/entry.ts";
import type { TerminalStatus } from "../shared/job.ts";
import type { Logger } from "../shared/log.ts";
import { formatDoneEvent, HEARTBEAT_FRAME } from "../shared/sse.ts";
import { CLOSED_BY_SERVER, isExpectedDisconnect } from "./disconnect.ts";

export const SSE_HEADERS = {
  "Content-Type": "text/event-stream; charset=utf-8",
  "Cache-Control": "no-cache, no-transform",
  "X-Accel-Buffering": "no",
} as const;

// A dropped viewer that reads nothing for this long is aborted (see Viewers.close).
const DROP_DRAIN_MS = 30_000;

// EventSource waits this long before reconnecting after the server closes a stream.
const RETRY_FRAME = "retry: 2000\n\n";

const encoder = new TextEncoder();

/** One viewer's SSE stream. */
export interface Viewer {
  readonly writer: WritableStreamDefaultWriter<Uint8Array>;
  /** The id of the last entry this viewer has been sent in full. */
  lastSent: string;
  /** False while it catches up from its cursor; live fan-out skips it until then. */
  live: boolean;
  closed: boolean;
  /** Settles once everything written so far has been read from the stream (or it failed). */
  lastWrite: Promise<unknown>;
}

export interface ViewersSettings {
  readonly maxViewers: number;
  /** A viewer with more than this many bytes queued and unread is closed (it resumes on reconnect). */
  readonly maxViewerLagBytes: number;
  readonly heartbeatMs: number;
}

/** A slice of entries as the tail fans it out: one event per entry, encoded once for everyone. */
export interface FanOutSlice {
  /** The id of the entry right before the slice (the tail's position until now). */
  readonly after: string;
  readonly ids: readonly string[];
  readonly events: readonly string[];
  /** Every event, as the bytes each viewer gets. */
  readonly shared: Uint8Array;
  /** The id of the slice's last entry. */
  readonly position: string;
}

/**
 * A job's viewers: their streams, what each was sent, the lag bound, heartbeats and closing.
 * Live fan-out cannot wait for one viewer, so a viewer whose unread bytes pass the bound is
 * closed, never fed a gap: it reconnects with its last id. Catch-up waits for room instead
 * (`ready`), so a large resume is not mistaken for a slow viewer.
 */
export class Viewers {
  private readonly open = new Set<Viewer>();
  /** When every live viewer last got bytes (a fan-out or a heartbeat): heartbeats key off it. */
  lastFrameAt = Date.now();

  private readonly settings: ViewersSettings;

  private readonly logger: Logger;

  constructor(settings: ViewersSettings, logger: Logger) {
    this.settings = settings;
    this.logger = logger;
  }

  get size(): number {
    return this.open.size;
  }

  get full(): boolean {
    return this.open.size >= this.settings.maxViewers;
  }

  /** A new viewer and its SSE response; the viewer is dropped when `signal` aborts. */
  connect(signal: AbortSignal): { viewer: Viewer; response: Response } {
    // workerd's native stream rather than a JS TransformStream: the bytes go from the write to
    // the response without a JS read per chunk, which cut workerd's CPU per delivered line at
    // 1,000 viewers by a quarter in bench:fanout. Its queue counts bytes against highWaterMark
    // (desiredSize: the lag bound). Its writer's `ready` is not used: it never resolves again
    // once the queue has passed highWaterMark and drained (see ready()).
    const { readable, writable } = new IdentityTransformStream({
      highWaterMark: this.settings.maxViewerLagBytes,
    });
    const viewer: Viewer = {
      writer: writable.getWriter(),
      lastSent: "0-0",
      live: false,
      closed: false,
      lastWrite: Promise.resolve(),
    };
    // How a viewer that went away shows up: its stream errors. The writer's `closed` and `ready`
    // then reject, and workerd reports a rejection nobody handles as an uncaught exception.
    viewer.writer.closed.catch((error: unknown) => {
      viewer.writer.ready.catch(() => undefined);
      if (!isExpectedDisconnect(error)) this.logger.error("a viewer's stream failed", error);
      this.close(viewer, true);
    });
    this.open.add(viewer);
    signal.addEventListener("abort", () => this.close(viewer, true));
    this.send(viewer, encoder.encode(RETRY_FRAME));
    return { viewer, response: new Response(readable, { headers: SSE_HEADERS }) };
  }

  /** Writes to one viewer; past the lag bound it is closed, unless the caller paces (`ready`). */
  send(viewer: Viewer, bytes: Uint8Array, paced = false): void {
    if (viewer.closed) return;
    viewer.lastWrite = viewer.writer.write(bytes).catch(() => this.close(viewer, true));
    const desired = viewer.writer.desiredSize;
    if (!paced && desired !== null && desired < 0) this.close(viewer, true);
  }

  sendText(viewer: Viewer, text: string, paced = false): void {
    this.send(viewer, encoder.encode(text), paced);
  }

  /**
   * Resolves once the viewer has room in its queue (or is closed). It waits for the last write
   * to be read, not for the writer's `ready`: workerd's IdentityTransformStream never resolves
   * `ready` again once its queue has passed highWaterMark and drained (test/worker/viewers.test.ts),
   * and a paced catch-up waited forever on it. A write to that stream settles once the reader
   * has taken it, so the queue is empty then; a catch-up fills it again up to the bound.
   */
  async ready(viewer: Viewer): Promise<void> {
    while (!viewer.closed && (viewer.writer.desiredSize ?? 1) <= 0) {
      const last = viewer.lastWrite;
      await last;
      // Nothing written since, so nothing is queued, whatever desiredSize says.
      if (viewer.lastWrite === last) return;
    }
  }

  /**
   * A slice to every live viewer: the shared bytes, or what lies past what it already has. A
   * thousand viewers cost a thousand writes of the same bytes and nothing else per viewer: one
   * that had everything up to the slice (nearly all) is told by one string comparison.
   */
  fanOut(slice: FanOutSlice): void {
    const firstId = slice.ids[0] ?? "0-0";
    for (const viewer of this.open) {
      if (!viewer.live) continue;
      if (viewer.lastSent === slice.after || compareEntryIds(viewer.lastSent, firstId) < 0) {
        this.send(viewer, slice.shared);
        viewer.lastSent = slice.position;
        continue;
      }
      // Rare: it caught up past the start of this slice; send it the rest only.
      const rest = slice.events.filter(
        (_, i) => compareEntryIds(slice.ids[i] ?? "0-0", viewer.lastSent) > 0,
      );
      if (rest.length > 0) this.sendText(viewer, rest.join(""));
      if (compareEntryIds(viewer.lastSent, slice.position) < 0) viewer.lastSent = slice.position;
    }
    this.lastFrameAt = Date.now();
  }

  /**
   * A heartbeat once nothing went out for the heartbeat interval, to live viewers with nothing
   * unread (one still reading needs no keepalive). Returns when the next one is due.
   */
  heartbeat(now = Date.now()): number {
    if (now - this.lastFrameAt >= this.settings.heartbeatMs) {
      const frame = encoder.encode(HEARTBEAT_FRAME);
      for (const viewer of this.open) {
        if (viewer.live && (viewer.writer.desiredSize ?? 0) >= this.settings.maxViewerLagBytes)
          this.send(viewer, frame);
      }
      this.lastFrameAt = now;
    }
    return this.lastFrameAt + this.settings.heartbeatMs;
  }

  /** The job's end: `done`, then the stream closes. */
  finish(viewer: Viewer, status: TerminalStatus, lastCursor: string | null): void {
    this.sendText(viewer, formatDoneEvent(status, lastCursor));
    this.close(viewer, false);
  }

  finishLive(status: TerminalStatus, lastCursor: string | null): void {
    for (const viewer of [...this.open]) if (viewer.live) this.finish(viewer, status, lastCursor);
  }

  /**
   * Ends a viewer's stream. Either way the stream ends cleanly once what is queued has gone out,
   * and EventSource resumes from its last id. `drop` (a slow viewer, one that went away, a
   * failed catch-up) also bounds that wait: a viewer that reads nothing for DROP_DRAIN_MS is
   * aborted, so a stuck client cannot hold its queue. Aborting at once instead would error the
   * body workerd is still piping to the viewer, which workerd reports as an uncaught exception.
   */
  close(viewer: Viewer, drop: boolean): void {
    if (viewer.closed) return;
    viewer.closed = true;
    this.open.delete(viewer);
    const deadline = drop
      ? setTimeout(() => {
          viewer.writer.abort(CLOSED_BY_SERVER).catch(() => undefined);
        }, DROP_DRAIN_MS)
      : null;
    // A close that fails (the viewer went away meanwhile) rejects `closed` too, handled above.
    viewer.writer
      .close()
      .catch(() => undefined)
      .finally(() => {
        if (deadline !== null) clearTimeout(deadline);
      });
  }

  /** Closes every stream cleanly (what was sent still arrives); returns how many there were. */
  closeAll(): number {
    const count = this.open.size;
    for (const viewer of [...this.open]) this.close(viewer, false);
    return count;
  }
}
