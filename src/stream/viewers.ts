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

// A dropped viewer that has not read what is queued for it by then is cut off (Viewers.close).
const DROP_DRAIN_MS = 30_000;
// How often a dropped viewer's queue is looked at to close its stream once it is read out.
const DRAIN_CHECK_MS = 100;
// How often a paced catch-up looks for room in a full queue (Viewers.ready): at first, and at most.
const PACE_CHECK_MS = 5;
const PACE_CHECK_MAX_MS = 500;

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

// EventSource waits this long before reconnecting after the server closes a stream.
const RETRY_FRAME = "retry: 2000\n\n";

const encoder = new TextEncoder();

// Up to this many live viewers a fan-out writes to all of them at once (some 3 ms of workerd's
// time at 100); past it, fanOut paces the writes.
const PACED_FROM = 250;
// Unsent slices larger than this, or than a quarter of the lag bound (a backlog), go to every
// viewer at once.
const PACED_BYTES = 64 * 1024;

/** One viewer's SSE stream. */
export interface Viewer {
  /** Its response body's queue: bytes are enqueued here and workerd reads them out. */
  readonly queue: ReadableStreamDefaultController<Uint8Array>;
  /** The id of the last entry this viewer has been sent in full. */
  lastSent: string;
  /** False while it catches up from its cursor; live fan-out skips it until then. */
  live: boolean;
  closed: boolean;
  /** The stream is closed, cancelled by its reader or errored: nothing more can be queued. */
  gone: boolean;
}

export interface ViewersSettings {
  readonly maxViewers: number;
  /** A viewer with more than this many bytes queued and unread is closed (it resumes on reconnect). */
  readonly maxViewerLagBytes: number;
  readonly heartbeatMs: number;
  /**
   * A large audience's pacing: while more than `pacedFrom` viewers are live, a fan-out writes
   * to about as many viewers as this interval's share of them, the rest in turn (fanOut). None
   * without it.
   */
  readonly activePollMs?: number;
  /** How many live viewers a fan-out always writes to at once (PACED_FROM by default). */
  readonly pacedFrom?: number;
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
  /** Slices fanned out that a live viewer still lacks (fanOut paces a large audience). */
  private unsent: FanOutSlice[] = [];
  /** When each unsent slice came: a paced fan-out holds none back longer than the interval. */
  private readonly sliceAt = new WeakMap<FanOutSlice, number>();
  private lastSliceAt = Number.NEGATIVE_INFINITY;
  /** The smoothed time between slices (fanOut), null before the first. */
  private sliceGapMs: number | null = null;
  private writeTimer: ReturnType<typeof setTimeout> | null = null;
  /** The writes a paced fan-out may make now (writeUnsent), and when that was worked out. */
  private writeCredit = 0;
  private creditAt = Number.NEGATIVE_INFINITY;
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

  /** A fan-out goes to a share of the viewers at a time (see fanOut). */
  get paced(): boolean {
    return (
      this.settings.activePollMs !== undefined &&
      this.open.size > (this.settings.pacedFrom ?? PACED_FROM)
    );
  }

  get full(): boolean {
    return this.open.size >= this.settings.maxViewers;
  }

  /** A new viewer and its SSE response; the viewer is dropped when `signal` aborts. */
  connect(signal: AbortSignal): { viewer: Viewer; response: Response } {
    // A JS ReadableStream fed by enqueue() rather than a stream to write to: an enqueue is a
    // push onto the queue, with no promise per write for the object to settle, and workerd
    // reads the queue out into the response as it drains. At 1,000 viewers in bench:fanout that
    // cut workerd's CPU per delivered line by a fifth against the native IdentityTransformStream
    // (2.0-2.1 -> 1.6-1.7 µs), push p99 121-122 -> 108-111 ms, and its memory by 80 MB. Its
    // queue counts bytes against highWaterMark, so desiredSize is the room left under the lag
    // bound. The source has no `pull`: the stream calls it after every enqueue while the queue
    // is under highWaterMark, which cost a fifth of the fan-out's CPU again (2.0 µs per line)
    // to say what only a waiting catch-up or a dropped viewer needs to know, and those two
    // look at desiredSize on a timer instead (ready, closeWhenReadOut).
    let viewer: Viewer | null = null;
    const readable = new ReadableStream<Uint8Array>(
      {
        start: (queue) => {
          viewer = {
            queue,
            lastSent: "0-0",
            live: false,
            closed: false,
            gone: false,
          };
        },
        // How a viewer that went away shows up: workerd cancels the body (its reason, if any,
        // says why; none is given when the reader just stopped).
        cancel: (reason: unknown) => {
          if (reason !== undefined && !isExpectedDisconnect(reason))
            this.logger.error("a viewer's stream failed", reason);
          if (viewer === null) return;
          viewer.gone = true;
          this.close(viewer, true);
        },
      },
      new ByteLengthQueuingStrategy({ highWaterMark: this.settings.maxViewerLagBytes }),
    );
    if (viewer === null) throw new Error("the viewer's stream did not start");
    const started: Viewer = viewer;
    this.open.add(started);
    signal.addEventListener("abort", () => this.close(started, true));
    this.send(started, encoder.encode(RETRY_FRAME));
    // Aborted already (the viewer left while its request came in): no abort event will come.
    if (signal.aborted) this.close(started, true);
    return { viewer: started, response: new Response(readable, { headers: SSE_HEADERS }) };
  }

  /** Sends to one viewer; past the lag bound it is closed, unless the caller paces (`ready`). */
  send(viewer: Viewer, bytes: Uint8Array, paced = false): void {
    if (viewer.closed) return;
    try {
      viewer.queue.enqueue(bytes);
    } catch {
      // The stream was cancelled or errored under it (the viewer went away).
      viewer.gone = true;
      this.close(viewer, true);
      return;
    }
    const desired = viewer.queue.desiredSize;
    if (!paced && desired !== null && desired < 0) this.close(viewer, true);
  }

  sendText(viewer: Viewer, text: string, paced = false): void {
    this.send(viewer, encoder.encode(text), paced);
  }

  /**
   * Resolves once the viewer has room in its queue (or is closed). It looks again soon, then
   * less and less often; a viewer that reads nothing for DROP_DRAIN_MS is cut off, so a stuck
   * client resuming from far back holds neither a timer nor its queue for ever.
   */
  async ready(viewer: Viewer): Promise<void> {
    let waited = 0;
    for (let every = PACE_CHECK_MS; !viewer.closed && (viewer.queue.desiredSize ?? 1) <= 0; ) {
      if (waited >= DROP_DRAIN_MS) {
        this.cutOff(viewer);
        return;
      }
      await sleep(every);
      waited += every;
      every = Math.min(every * 2, PACE_CHECK_MAX_MS);
    }
  }

  /**
   * A slice to every live viewer: the shared bytes, or what lies past what it already has. A
   * thousand viewers cost a thousand writes of the same bytes and nothing else per viewer: one
   * that had everything up to the slice (nearly all) is told by one string comparison.
   *
   * A large audience is paced. A write costs workerd some 30-40 µs a viewer whatever it holds,
   * so a fan-out to 1,000 viewers takes some 40 ms, and the last viewer gets a line that much
   * after the first; waiting to fan out two slices at once halves the writes but makes the
   * older slice wait for the newer. Past `pacedFrom` live viewers, writes are paced to one
   * per viewer per `activePollMs`, as a poll gives: a slice goes to the share of the audience
   * the time since the slice before earned (gap / activePollMs of it), longest-waiting first,
   * and to more if credit left unspent allows. For a build printing every 50 ms the two halves
   * take turns, each write holding two slices. Those left waiting go with the next slice, or by
   * a timer once the credit covers them (a quarter of a gap after the next slice was due at
   * the earliest), and none waits longer than the interval. At 1,000 viewers (bench:fanout, a
   * build printing 10 lines every 50 ms, on a machine where a write costs ~60 µs) the shares
   * by a smoothed gap that came before wrote 16 % more than a poll whenever pushes came
   * unevenly (233,000 writes against 201,000 in 20 s; CPU per line 1.19-1.28x poll's, p99
   * 243-308 ms); paced by time, 202,000-204,000 (1.08-1.10x, p99 183-254 ms). The rest of the
   * CPU is the runner's 20 pushes a second against 10 reads (a push costs ~2 ms of local
   * workerd's time, 1 ms of it any request's).
   */
  fanOut(slice: FanOutSlice): void {
    const now = Date.now();
    const everyMs = this.settings.activePollMs ?? 0;
    // Smoothed, so that one slice late or early does not regroup the audience. The first gap
    // after a quiet spell (twice the interval or more, or none before) replaces what was
    // smoothed before it; that spell's first slice goes to everyone.
    const gap = now - this.lastSliceAt;
    if (gap >= 2 * everyMs) this.sliceGapMs = null;
    else this.sliceGapMs = this.sliceGapMs === null ? gap : 0.75 * this.sliceGapMs + 0.25 * gap;
    this.lastSliceAt = now;
    this.unsent.push(slice);
    this.sliceAt.set(slice, now);
    this.writeUnsent(false, gap);
  }

  /**
   * Writes what the live viewers have not been sent, to all (`all`) or as fanOut paces it. A
   * slice's round (`sliceGapMs`: the time since the slice before) may always write the share
   * of the audience that time earned.
   */
  private writeUnsent(all: boolean, sliceGapMs = 0): void {
    // Some were left waiting: the order of the round matters.
    const wereWaiting = this.writeTimer !== null;
    if (this.writeTimer !== null) {
      clearTimeout(this.writeTimer);
      this.writeTimer = null;
    }
    const newest = this.unsent.at(-1);
    if (newest === undefined) return;
    const now = Date.now();
    const everyMs = this.settings.activePollMs ?? 0;
    // Slices of a backlog (large, and back to back) go to everyone: joined up for a viewer left
    // waiting they could pass its lag bound, and their cost is in their bytes, not the writes.
    const paced =
      !all &&
      everyMs > 0 &&
      this.paced &&
      this.unsent.reduce((sum, unsent) => sum + unsent.shared.byteLength, 0) <=
        Math.min(PACED_BYTES, this.settings.maxViewerLagBytes / 4);
    // One write per viewer per interval, earned as time passes (a round of the whole audience
    // at most): a slice goes to the share of the audience its gap earned or what the credit
    // allows, the longest-waiting first. A slice that comes right after the timer spent the
    // credit still gets its share, in debt; the debt holds back the timer, not the slices.
    const rate = everyMs > 0 ? this.open.size / everyMs : 0;
    this.writeCredit = Math.min(
      this.open.size,
      this.writeCredit + (rate > 0 ? Math.max(0, now - this.creditAt) * rate : 0),
    );
    this.creditAt = now;
    const share = Math.floor(Math.min(this.open.size, sliceGapMs * rate));
    const budget = paced
      ? Math.max(share, Math.floor(this.writeCredit + 1e-6))
      : Number.POSITIVE_INFINITY;
    // What waited an interval goes out whatever the credit says, as a poll would have sent it.
    // (Held back three quarters of one at most, the extra writes cost more of workerd's time
    // than they saved: in bench:fanout at 1,000 viewers 4-5 % more writes, and p99 215-271 ms
    // against 183-254 ms.)
    let overdue: string | null = null;
    if (paced)
      for (const unsent of this.unsent)
        if (now - (this.sliceAt.get(unsent) ?? now) >= everyMs - 1) overdue = unsent.position;
    const rotate = paced || wereWaiting;
    // The same bytes for every viewer that lacks the same slices: built once per write.
    const joined = new Map<string, Uint8Array>();
    let written = 0;
    let waiting = 0;
    let oldestWaiting: string | null = null;
    for (const viewer of this.open) {
      // One that has everything (all of them, after a write to all) is told by one comparison
      // of strings.
      if (
        !viewer.live ||
        viewer.lastSent === newest.position ||
        compareEntryIds(viewer.lastSent, newest.position) > 0
      )
        continue;
      if (
        written >= budget &&
        (overdue === null || compareEntryIds(viewer.lastSent, overdue) >= 0)
      ) {
        waiting += 1;
        if (oldestWaiting === null || compareEntryIds(viewer.lastSent, oldestWaiting) < 0)
          oldestWaiting = viewer.lastSent;
        continue;
      }
      this.sendUnsent(viewer, joined);
      // Closed by that write (past its lag bound, or its stream gone): out of the round, and it
      // takes nobody's place in the budget.
      if (viewer.closed) continue;
      written += 1;
      if (!rotate) continue;
      // To the back of the round, so the ones left waiting go first next time. Also when all
      // go after some waited (the timer sends them): the next paced fan-out would otherwise
      // write first those it just wrote. (A viewer moved behind the loop comes round again; it
      // has everything then, and is passed over.)
      this.open.delete(viewer);
      this.open.add(viewer);
    }
    if (written > 0) this.lastFrameAt = now;
    this.writeCredit = Math.max(-this.open.size, this.writeCredit - written);
    if (waiting === 0 || oldestWaiting === null) {
      this.unsent = [];
      return;
    }
    // Slices every waiting viewer has are done with.
    const from = oldestWaiting;
    this.unsent = this.unsent.filter((unsent) => compareEntryIds(unsent.position, from) > 0);
    // The rest go with the next slice; or once the credit covers them, but not before a
    // quarter of the gap after the next slice was due (sooner, the timer would often come just
    // before it, spend the credit, and leave that slice to its share); and at the latest when
    // the oldest of them has waited an interval.
    const dueMs = 1.25 * (this.sliceGapMs ?? 0);
    const earnedMs = rate > 0 ? (waiting - this.writeCredit) / rate : 0;
    const oldest = this.unsent[0];
    const overdueMs =
      (oldest === undefined ? now : (this.sliceAt.get(oldest) ?? now)) + everyMs - now;
    const afterMs = Math.max(0, Math.ceil(Math.min(Math.max(dueMs, earnedMs), overdueMs)));
    // Left set while it runs: writeUnsent then knows some waited, and rotates the round.
    this.writeTimer = setTimeout(() => this.writeUnsent(false), afterMs);
  }

  /** Sends one viewer the unsent slices past what it has. */
  private sendUnsent(viewer: Viewer, joined: Map<string, Uint8Array>): void {
    const newest = this.unsent.at(-1);
    if (newest === undefined) return;
    // Viewers that had the same slices get the same bytes: looked up by what they had.
    const known = joined.get(viewer.lastSent);
    if (known !== undefined) {
      this.send(viewer, known);
      viewer.lastSent = newest.position;
      return;
    }
    const from = this.unsent.findIndex(
      (slice) => compareEntryIds(slice.position, viewer.lastSent) > 0,
    );
    const first = this.unsent[from];
    if (first === undefined) return;
    if (
      viewer.lastSent === first.after ||
      compareEntryIds(viewer.lastSent, first.ids[0] ?? "0-0") < 0
    ) {
      const bytes = joinBytes(this.unsent.slice(from).map((slice) => slice.shared));
      joined.set(viewer.lastSent, bytes);
      this.send(viewer, bytes);
    } else {
      // Rare: it caught up past the start of a slice; send it the rest only.
      const after = viewer.lastSent;
      const rest = this.unsent
        .slice(from)
        .flatMap((slice) =>
          slice.events.filter((_, i) => compareEntryIds(slice.ids[i] ?? "0-0", after) > 0),
        );
      if (rest.length > 0) this.sendText(viewer, rest.join(""));
    }
    viewer.lastSent = newest.position;
  }

  /**
   * A heartbeat once nothing went out for the heartbeat interval, to live viewers with nothing
   * unread (one still reading needs no keepalive). Returns when the next one is due.
   */
  heartbeat(now = Date.now()): number {
    if (now - this.lastFrameAt >= this.settings.heartbeatMs) {
      const frame = encoder.encode(HEARTBEAT_FRAME);
      for (const viewer of this.open) {
        if (viewer.live && (viewer.queue.desiredSize ?? 0) >= this.settings.maxViewerLagBytes)
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
    // Every line before the end, paced or not.
    this.writeUnsent(true);
    for (const viewer of [...this.open]) if (viewer.live) this.finish(viewer, status, lastCursor);
  }

  /**
   * Ends a viewer's stream. Either way the stream ends cleanly once what is queued has gone out,
   * and EventSource resumes from its last id. `drop` (a slow viewer, one that went away, a
   * failed catch-up) also bounds that wait: a viewer that has not read what is queued within
   * DROP_DRAIN_MS is cut off (its stream errors), so a stuck client cannot hold its queue.
   */
  close(viewer: Viewer, drop: boolean): void {
    if (viewer.closed) return;
    viewer.closed = true;
    this.open.delete(viewer);
    if (viewer.gone) return;
    if (drop && !this.readOut(viewer)) void this.closeWhenReadOut(viewer);
    else this.closeQueue(viewer);
  }

  /**
   * Closes a dropped viewer's stream once what is queued has been read, or errors it if that
   * takes DROP_DRAIN_MS. (workerd does not error a stream whose close() was called, so close()
   * waits.)
   */
  private async closeWhenReadOut(viewer: Viewer): Promise<void> {
    for (let waited = 0; waited < DROP_DRAIN_MS; waited += DRAIN_CHECK_MS) {
      await sleep(DRAIN_CHECK_MS);
      if (viewer.gone) return;
      if (this.readOut(viewer)) {
        this.closeQueue(viewer);
        return;
      }
    }
    this.cutOff(viewer);
  }

  /** Ends the viewer's stream at once, queued bytes and all (it resumes from its last id). */
  private cutOff(viewer: Viewer): void {
    viewer.closed = true;
    this.open.delete(viewer);
    if (viewer.gone) return;
    viewer.gone = true;
    viewer.queue.error(new Error(CLOSED_BY_SERVER));
  }

  /** Nothing is queued for the viewer. */
  private readOut(viewer: Viewer): boolean {
    return (viewer.queue.desiredSize ?? 0) >= this.settings.maxViewerLagBytes;
  }

  private closeQueue(viewer: Viewer): void {
    viewer.gone = true;
    try {
      viewer.queue.close();
    } catch {
      // cancelled meanwhile
    }
  }

  /** Closes every stream cleanly (what was sent still arrives); returns how many there were. */
  closeAll(): number {
    const count = this.open.size;
    // What waits goes first: the streams end with every line fanned out so far.
    this.writeUnsent(true);
    for (const viewer of [...this.open]) this.close(viewer, false);
    return count;
  }
}

function joinBytes(parts: readonly Uint8Array[]): Uint8Array {
  if (parts.length === 1 && parts[0] !== undefined) return parts[0];
  const bytes = new Uint8Array(parts.reduce((sum, part) => sum + part.byteLength, 0));
  let at = 0;
  for (const part of parts) {
    bytes.set(part, at);
    at += part.byteLength;
  }
  return bytes;
}
