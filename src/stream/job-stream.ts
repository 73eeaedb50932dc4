import { DurableObject } from "cloudflare:workers";
import { workerConfig } from "../config.ts";
import { archiveStoreFromEnv } from "../log/archive-store.ts";
import { createRedis } from "../redis.ts";
import { armNoLaterThan, LOST_ALARM_MS } from "../shared/alarm.ts";
import { type Cursor, compareEntryIds, parseCursor } from "../shared/entry.ts";
import { ApiError, type ErrorCode, errorBody } from "../shared/errors.ts";
import { describeIssues } from "../shared/json-body.ts";
import { isValidJobId } from "../shared/keys.ts";
import {
  decodeLivePush,
  type LivePushAnswer,
  type PushReply,
  pushMessageSchema,
} from "../shared/live-push.ts";
import { type Logger, scopedLogger } from "../shared/log.ts";
import { type CatchUpHost, catchUp, serveFromArchive } from "./catch-up.ts";
import { isExpectedDisconnect } from "./disconnect.ts";
import { type DecodedPush, Tail, type TailState } from "./tail.ts";
import { type Viewer, Viewers } from "./viewers.ts";

// Tags the runner's push sockets among the object's hibernatable WebSockets.
const PUSH_SOCKET_TAG = "push";

/** A push message's seq, where it has one. */
function seqIn(value: unknown): number | null {
  return typeof value === "object" &&
    value !== null &&
    "seq" in value &&
    typeof value.seq === "number"
    ? value.seq
    : null;
}

function seqOf(message: string | ArrayBuffer): number | null {
  try {
    return seqIn(
      JSON.parse(typeof message === "string" ? message : new TextDecoder().decode(message)),
    );
  } catch {
    return null;
  }
}

/** Settings from the Worker's vars (src/config.ts). */
export interface JobStreamSettings {
  readonly heartbeatMs: number;
  readonly maxViewers: number;
  /** Poll interval while lines flow; it doubles on every empty poll up to idlePollMaxMs. */
  readonly activePollMs: number;
  readonly idlePollMaxMs: number;
  /** Once the runner pushes: how long without a push (or keepalive) before the object reads Redis itself. */
  readonly safetyPollMs: number;
  /** A viewer with more than this many bytes queued and unread is closed (it resumes on reconnect). */
  readonly maxViewerLagBytes: number;
  /** Past this many live viewers, a fan-out is paced (Viewers.fanOut). */
  readonly pacedFrom: number;
}

const STATE_KEY = "state";
// The watchdog (JobStream.watch) checks at least this far apart.
const WATCHDOG_MIN_MS = 250;

/**
 * The per-job Durable Object: the only live reader of the job's Redis Stream, whatever the
 * number of viewers. It composes three parts, each with one job: the tail (position, unread
 * entries, the recent ring; src/stream/tail.ts), the viewers (send, lag bound, heartbeat, close;
 * viewers.ts) and the catch-up of a resuming viewer (ring, then Redis, then the archive;
 * catch-up.ts). It owns the one alarm, which reads Redis while no runner pushes (fast while lines
 * flow, slower when idle), and once pushes come only for a backlog, a wake, or after the safety
 * interval without a push; the alarm also keeps heartbeats going. Its job id is its name
 * (`ctx.id.name`): the Worker addresses it with `getByName(jobId)`.
 */
export class JobStream extends DurableObject<Env> {
  private readonly settings: JobStreamSettings;
  private readonly viewers: Viewers;
  private readonly tail: Tail;
  private readonly log: Logger;
  /** When the last read started: the next is timed from it, so the fan-out's own cost does not stretch the period. */
  private lastReadAt = 0;
  /** When the last push (or keepalive) came. */
  private lastPushAt = 0;
  /** The runner or the sweep said the job moved on (its end): read at the next alarm. */
  private wakeRequested = false;
  /**
   * The last push was answered with viewers, so the runner goes on pushing. Answered with none,
   * it only probes now and then: a viewer who comes meanwhile is served by polls until it does.
   */
  private runnerPushing = false;
  /** A timer will take the pushes waiting in the tail (fanOutSoon). */
  private pushTimerSet = false;
  /**
   * When the alarm last ended, or the first viewer came since: with viewers it runs at least
   * every heartbeat interval (the watchdog counts from here), and it owes nothing while none watch.
   */
  private lastAlarmAt = Date.now();
  private alarmRunning = false;
  /** The timer that checks, while viewers are connected, that the alarm still runs (watch). */
  private watchdog: ReturnType<typeof setTimeout> | null = null;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    this.settings = workerConfig(env).stream;
    this.log = scopedLogger(`JobStream:${ctx.id.name ?? "?"}`);
    this.viewers = new Viewers(this.settings, this.log);
    const object = this;
    this.tail = new Tail(
      {
        get jobId() {
          return object.jobId;
        },
        redis: () => createRedis(this.env),
        archive: () => archiveStoreFromEnv(this.env),
        // Unconfirmed: lines need not wait for the position's write (an output gate would hold
        // every fan-out until storage confirmed it); a lost write only means reading on from
        // an older position after a restart.
        save: (state) => ctx.storage.put(STATE_KEY, state, { allowUnconfirmed: true }),
        fanOut: (slice) => this.viewers.fanOut(slice),
        ended: (status, lastCursor) => this.viewers.finishLive(status, lastCursor),
      },
      // A quarter of the lag bound per fan-out: a backlog (the object was idle, or the runner
      // burst) goes out in slices viewers can drain instead of closing them all as slow at once.
      { sliceBytes: this.settings.maxViewerLagBytes / 4 },
    );
    void ctx.blockConcurrencyWhile(async () => {
      this.tail.load(await ctx.storage.get<TailState>(STATE_KEY));
    });
  }

  /** The job this object serves: its name, given by the Worker's `getByName(jobId)`. */
  private get jobId(): string {
    const name = this.ctx.id.name;
    if (name === undefined || !isValidJobId(name))
      throw new Error("a JobStream is addressed by its job id (getByName)");
    return name;
  }

  private get catchUpHost(): CatchUpHost {
    return {
      jobId: this.jobId,
      viewers: this.viewers,
      position: () => this.tail.position ?? "0-0",
      recent: this.tail.recent,
      redis: () => createRedis(this.env),
      archive: () => archiveStoreFromEnv(this.env),
    };
  }

  /** Viewers connect here: `GET /stream[?after=<cursor>][&archived=1]`, forwarded by the Worker after auth. */
  override async fetch(request: Request): Promise<Response> {
    const url = new URL(request.url);
    if (url.pathname === "/push-socket") return this.acceptPushSocket();
    const afterParam = url.searchParams.get("after");
    const after = afterParam === null ? null : parseCursor(afterParam);
    if (afterParam !== null && after === null)
      return jsonError(400, "invalid_cursor", "malformed cursor");
    if (this.viewers.full) {
      const response = jsonError(
        429,
        "too_many_viewers",
        `this job already has ${this.settings.maxViewers} viewers; try again shortly`,
      );
      response.headers.set("Retry-After", "5");
      return response;
    }
    // Nobody watched until now, so no alarm was due: the watchdog counts from here, not from the
    // last alarm before (a first viewer's catch-up taking a while is no lost alarm).
    if (this.viewers.size === 0) this.lastAlarmAt = Math.max(this.lastAlarmAt, Date.now());
    const { viewer, response } = this.viewers.connect(request.signal);
    this.ctx.waitUntil(this.admit(viewer, after, url.searchParams.get("archived") === "1"));
    this.watch();
    return response;
  }

  /**
   * The runner's entries, right after their XADD (see Tail.push). Answers how many viewers there
   * are: the runner pushes only while there are some.
   */
  async push(push: DecodedPush): Promise<LivePushAnswer> {
    this.lastPushAt = Date.now();
    if (this.viewers.size > 0) this.fanOutSoon(push);
    this.runnerPushing = this.viewers.size > 0;
    return { viewers: this.viewers.size, paced: this.viewers.paced };
  }

  /**
   * The runner's push socket (the Worker checked its token): hibernatable, so an object with
   * nothing to do is not held in memory by it. Pushes come as messages (webSocketMessage).
   */
  private acceptPushSocket(): Response {
    const [client, server] = Object.values(new WebSocketPair());
    if (client === undefined || server === undefined) throw new Error("no WebSocket pair");
    // One runner socket per job: one it replaces (a reconnect after a fault) may be half-open.
    for (const older of this.ctx.getWebSockets(PUSH_SOCKET_TAG)) {
      try {
        older.close(1000, "replaced");
      } catch {
        // already closed
      }
    }
    this.ctx.acceptWebSocket(server, [PUSH_SOCKET_TAG]);
    return new Response(null, { status: 101, webSocket: client });
  }

  /** A push over the push socket: checked as the POST route checks it, answered with its `seq`. */
  override async webSocketMessage(ws: WebSocket, message: string | ArrayBuffer): Promise<void> {
    let reply: PushReply;
    try {
      reply = await this.pushMessage(message);
    } catch (error) {
      // Answered all the same, so the runner goes by POST now rather than after its timeout.
      this.log.error("a push over the socket failed", error);
      reply = { seq: seqOf(message), error: { code: "internal", message: "the push failed" } };
    }
    try {
      ws.send(JSON.stringify(reply));
    } catch {
      // The socket closed meanwhile: the runner's push goes by POST.
    }
  }

  private async pushMessage(message: string | ArrayBuffer): Promise<PushReply> {
    const invalid = (seq: number | null, text: string): PushReply => ({
      seq,
      error: { code: "invalid_push", message: text },
    });
    let value: unknown;
    try {
      value = JSON.parse(typeof message === "string" ? message : new TextDecoder().decode(message));
    } catch {
      return invalid(null, "the message is not JSON");
    }
    const parsed = pushMessageSchema.safeParse(value);
    if (!parsed.success) return invalid(seqIn(value), describeIssues(parsed.error));
    try {
      return { seq: parsed.data.seq, ...(await this.push(decodeLivePush(parsed.data.push))) };
    } catch (error) {
      if (error instanceof ApiError) return invalid(parsed.data.seq, error.message);
      throw error;
    }
  }

  override async webSocketClose(ws: WebSocket, code: number): Promise<void> {
    // The runner closed it (its job ended) or went away. (The compatibility date has workerd
    // answer a close itself; this only makes sure of it.)
    try {
      ws.close(code === 1005 || code === 1006 ? 1000 : code, "closed");
    } catch {
      // already closed
    }
  }

  /**
   * Takes a push after its answer has gone. The answer holds back the runner's next push (one
   * is in flight at a time), and a fan-out queues a write per viewer ahead of anything the
   * object sends after it: answered after the fan-out, a push's round trip at 1,000 viewers was
   * the whole fan-out's (p50 63 ms, p99 114 ms, in bench:fanout), and every line behind it
   * waited that long before it was even sent. A timer, not a microtask, so the answer is on its
   * way before the fan-out starts. Pushes that come before the timer fires (a busy object)
   * go out together (Tail.queuePush).
   */
  private fanOutSoon(push: DecodedPush): void {
    this.tail.queuePush(push);
    if (this.pushTimerSet) return;
    this.pushTimerSet = true;
    setTimeout(() => {
      this.pushTimerSet = false;
      this.tail
        .takePushes()
        .catch((error: unknown) => this.log.error("push failed", error))
        // A backlog (more than one slice, or more in Redis) is worked off by the alarm.
        .then(() => (this.tail.backlog ? this.arm() : undefined))
        .catch((error: unknown) => this.log.error("could not set the alarm", error));
    }, 0);
  }

  /**
   * The job moved on (lines after a quiet spell, or its end): read at the next alarm, coalesced
   * to one read per active interval (each fan-out costs a write per viewer).
   */
  async wake(): Promise<void> {
    this.tail.idleReads = 0;
    this.wakeRequested = true;
    if (this.viewers.size === 0) return;
    await this.armAt(Math.max(Date.now(), this.lastReadAt + this.settings.activePollMs));
  }

  /**
   * Closes every viewer's stream, as a deploy or an eviction would (what was sent still
   * arrives): each EventSource reconnects with its last id and resumes exactly. For draining
   * a job's viewers by hand; returns how many there were.
   */
  async disconnectViewers(): Promise<number> {
    return this.viewers.closeAll();
  }

  override async alarm(): Promise<void> {
    this.alarmRunning = true;
    try {
      await this.runAlarm();
    } finally {
      // From its end: a read retried through a Redis outage may hold it longer than the lapse.
      this.alarmRunning = false;
      this.lastAlarmAt = Date.now();
    }
  }

  private async runAlarm(): Promise<void> {
    await this.tail.saveIfBehind();
    if (this.viewers.size === 0) return;
    try {
      if (this.readDue()) {
        this.lastReadAt = Date.now();
        this.wakeRequested = false;
        await this.tail.read();
      }
    } catch (error) {
      this.log.error("read failed", error);
      this.tail.idleReads += 1;
    }
    // Also while Redis fails: the viewers stay connected and resume once it is back.
    this.viewers.heartbeat();
    await this.arm();
  }

  /** Brings a new viewer up to the tail's position, then makes it live. */
  private async admit(viewer: Viewer, after: Cursor | null, archived: boolean): Promise<void> {
    try {
      if (this.tail.position === null) await this.tail.read();
      // The Worker says the job is archived, so it has ended: if this object never saw the end
      // (it stopped reading before, and Redis's copy may be gone), the archive has the whole log.
      if (
        archived &&
        this.tail.state.ended === null &&
        (await serveFromArchive(this.catchUpHost, viewer, after))
      )
        return;
      if (after === null) {
        viewer.lastSent = this.tail.position ?? "0-0";
        // Give its EventSource a Last-Event-ID from the start (an id-only frame dispatches no
        // event): dropped before its first line, it still resumes exactly where it joined.
        this.viewers.sendText(viewer, `id: ${this.tail.state.lastCursor ?? "0-0:0"}\n\n`);
      } else {
        const reached = await catchUp(this.catchUpHost, viewer, after);
        if (compareEntryIds(viewer.lastSent, after.entryId) < 0) viewer.lastSent = after.entryId;
        // The log's own end, reached in catch-up (an archived job this object never saw end).
        if (reached !== null && this.tail.state.ended === null && !viewer.closed) {
          this.viewers.finish(viewer, reached, null);
          return;
        }
      }
      if (viewer.closed) return;
      viewer.live = true;
      const ended = this.tail.state.ended;
      if (ended !== null) {
        this.viewers.finish(viewer, ended, this.tail.state.lastCursor);
        return;
      }
      await this.arm();
    } catch (error) {
      // Catch-up waits on the viewer's stream, which fails when the viewer goes away.
      if (!isExpectedDisconnect(error)) this.log.error("could not admit a viewer", error);
      this.viewers.close(viewer, true);
    }
  }

  /**
   * Whether the alarm should read Redis: always while nobody pushes (the runner has no Worker
   * URL, or predates pushes, or was told nobody watches); once pushes come, only for a
   * backlog, a wake, or when none came for the safety interval (a silent runner).
   */
  private readDue(): boolean {
    if (!this.pushMode) return true;
    if (this.tail.backlog || this.wakeRequested) return true;
    return Date.now() - Math.max(this.lastPushAt, this.lastReadAt) >= this.settings.safetyPollMs;
  }

  private get pushMode(): boolean {
    return this.tail.state.pushed === true && this.runnerPushing;
  }

  /**
   * While viewers are connected, checks now and then that the alarm still runs: with viewers it
   * runs at least every heartbeat interval (arm), so none for longer than that plus
   * LOST_ALARM_MS means workerd lost it, stored or not (src/shared/alarm.ts), and heartbeats,
   * reads and safety reads all hang on it. Only a new viewer, a push or a wake would set it
   * again otherwise, and a runner without a Worker URL never pushes. A timer in memory needs no
   * storage; the viewers' open streams keep the object, and so the timer, alive.
   */
  private watch(): void {
    if (this.watchdog !== null) return;
    const { heartbeatMs } = this.settings;
    this.watchdog = setTimeout(
      () => {
        this.watchdog = null;
        if (this.viewers.size === 0 || this.tail.state.ended !== null) return;
        if (!this.alarmRunning && Date.now() - this.lastAlarmAt > heartbeatMs + LOST_ALARM_MS) {
          this.log.warn("no alarm ran for longer than it may: it was lost; setting it again");
          this.lastAlarmAt = Date.now(); // one repair per lapse, not one per check
          this.arm().catch((error: unknown) => this.log.error("could not set the alarm", error));
        }
        this.watch();
      },
      Math.max(WATCHDOG_MIN_MS, heartbeatMs / 4),
    );
  }

  /** The one alarm: the next read (as readDue would have it) or heartbeat, whichever is first. */
  private async arm(): Promise<void> {
    if (this.viewers.size === 0 || this.tail.state.ended !== null) return;
    const { activePollMs, idlePollMaxMs, safetyPollMs, heartbeatMs } = this.settings;
    const backlog = this.tail.backlog;
    const readAt =
      backlog || this.wakeRequested
        ? this.lastReadAt + (backlog ? 0 : activePollMs)
        : this.pushMode
          ? Math.max(this.lastPushAt, this.lastReadAt) + safetyPollMs
          : this.lastReadAt +
            Math.min(idlePollMaxMs, activePollMs * 2 ** Math.min(this.tail.idleReads, 16));
    await this.armAt(Math.min(readAt, this.viewers.lastFrameAt + heartbeatMs));
  }

  private async armAt(at: number): Promise<void> {
    await armNoLaterThan(this.ctx.storage, at);
  }
}

function jsonError(status: number, code: ErrorCode, message: string): Response {
  return Response.json(errorBody(code, message), { status });
}
