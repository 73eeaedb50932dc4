import { DurableObject } from "cloudflare:workers";
import { archiveStoreFromEnv, readArchivedLog } from "../log/archive.ts";
import { createRedis } from "../redis.ts";
import {
  type Cursor,
  compareEntryIds,
  compareToCursor,
  decodeStreamReply,
  type LogLine,
  parseCursor,
  type StreamEntry,
} from "../shared/entry.ts";
import type { TerminalStatus } from "../shared/job.ts";
import { isValidJobId, logStreamKey } from "../shared/keys.ts";
import type { LivePushAnswer } from "../shared/live-push.ts";
import {
  formatDoneEvent,
  formatEntryEvent,
  formatLogEvent,
  HEARTBEAT_FRAME,
} from "../shared/sse.ts";

/** Settings read from the Worker's vars, with their defaults. */
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
}

function intVar(value: string | undefined, fallback: number, name: string): number {
  if (value === undefined || value === "") return fallback;
  const parsed = Number(value);
  if (!Number.isInteger(parsed) || parsed < 1)
    throw new RangeError(`${name} must be a positive integer, got ${JSON.stringify(value)}`);
  return parsed;
}

export function jobStreamSettings(env: Partial<Record<string, string>>): JobStreamSettings {
  return {
    heartbeatMs: intVar(env.SSE_HEARTBEAT_MS, 20_000, "SSE_HEARTBEAT_MS"),
    maxViewers: intVar(env.MAX_VIEWERS_PER_JOB, 100, "MAX_VIEWERS_PER_JOB"),
    activePollMs: intVar(env.TAIL_ACTIVE_POLL_MS, 100, "TAIL_ACTIVE_POLL_MS"),
    idlePollMaxMs: intVar(env.TAIL_IDLE_POLL_MAX_MS, 1_000, "TAIL_IDLE_POLL_MAX_MS"),
    safetyPollMs: intVar(env.TAIL_SAFETY_POLL_MS, 5_000, "TAIL_SAFETY_POLL_MS"),
    maxViewerLagBytes: intVar(env.MAX_VIEWER_LAG_BYTES, 1024 * 1024, "MAX_VIEWER_LAG_BYTES"),
  };
}

export const SSE_HEADERS = {
  "Content-Type": "text/event-stream; charset=utf-8",
  "Cache-Control": "no-cache, no-transform",
  "X-Accel-Buffering": "no",
} as const;

// EventSource waits this long before reconnecting after the server closes a stream.
const RETRY_FRAME = "retry: 2000\n\n";
const ENTRIES_PER_READ = 256;
// Entries kept in memory so a viewer that reconnects soon after a drop resumes without a read.
const RECENT_LINES = 5_000;

interface Viewer {
  readonly writer: WritableStreamDefaultWriter<Uint8Array>;
  /** The id of the last entry this viewer has been sent in full. */
  lastSent: string;
  /** False while it catches up from its cursor; live fan-out skips it until then. */
  live: boolean;
  closed: boolean;
}

interface StoredState {
  readonly jobId: string | null;
  readonly position: string | null;
  readonly lastCursor: string | null;
  readonly ended: TerminalStatus | null;
  /** The runner pushes this job's entries: polls are only the safety net then. */
  readonly pushed?: boolean;
}

/** A push as the Worker's route hands it over: entries decoded as a Redis read would give them. */
export interface DecodedPush {
  readonly writer: string;
  readonly previous: string | null;
  readonly entries: readonly StreamEntry[];
}

const encoder = new TextEncoder();

/**
 * The per-job Durable Object: the only live reader of the job's Redis Stream, whatever the
 * number of viewers. Alarms drive the tail (each alarm has a fresh subrequest budget), fast
 * while lines flow and slower when idle; the runner may wake it. Each batch is encoded once
 * and the same bytes go to every viewer. Its read position is in storage, so an object that is
 * evicted or redeployed resumes where it was, and viewers resume exactly from Last-Event-ID.
 */
export class JobStream extends DurableObject<Env> {
  private readonly settings: JobStreamSettings;
  private readonly viewers = new Set<Viewer>();
  private state: StoredState = { jobId: null, position: null, lastCursor: null, ended: null };
  private recent: StreamEntry[] = [];
  private recentLines = 0;
  private idlePolls = 0;
  /** When every live viewer last got bytes (a fan-out or a heartbeat): heartbeats key off it. */
  private lastFrameAt = Date.now();
  /** When the last poll started: the next is timed from it, so the fan-out's own cost does not stretch the period. */
  private lastPollAt = 0;
  /** Entries the last poll read but did not fan out (over its byte budget), in order. */
  private unread: StreamEntry[] = [];
  /** The last read from Redis filled its page: there may be more right behind it. */
  private moreInRedis = false;
  private polling: Promise<void> | null = null;
  /** Reads and pushes take their turn here, so entries go out once and in order. */
  private tailTurn: Promise<void> = Promise.resolve();
  /** When the last push (or keepalive) came. */
  private lastPushAt = 0;
  /** The writer whose pushes were last found continuous with Redis: pushes from another are checked first. */
  private trustedWriter: string | null = null;
  /** The runner or the sweep said the job moved on (its end): read at the next alarm. */
  private wakeRequested = false;
  /**
   * The last push was answered with viewers, so the runner goes on pushing. Answered with none,
   * it only probes now and then: a viewer who comes meanwhile is served by polls until it does.
   */
  private runnerPushing = false;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    this.settings = jobStreamSettings(env as unknown as Partial<Record<string, string>>);
    void ctx.blockConcurrencyWhile(async () => {
      this.state = (await ctx.storage.get<StoredState>("state")) ?? this.state;
    });
  }

  /** Viewers connect here: `GET /stream?job=<id>[&after=<cursor>]`, forwarded by the Worker after auth. */
  override async fetch(request: Request): Promise<Response> {
    const url = new URL(request.url);
    const jobId = url.searchParams.get("job") ?? "";
    if (!isValidJobId(jobId)) return jsonError(400, "invalid_job_id", "malformed job id");
    const afterParam = url.searchParams.get("after");
    const after = afterParam === null ? null : parseCursor(afterParam);
    if (afterParam !== null && after === null)
      return jsonError(400, "invalid_cursor", "malformed cursor");
    if (this.state.jobId === null) await this.saveState({ ...this.state, jobId });
    if (this.viewers.size >= this.settings.maxViewers) {
      const response = jsonError(
        429,
        "too_many_viewers",
        `this job already has ${this.settings.maxViewers} viewers; try again shortly`,
      );
      response.headers.set("Retry-After", "5");
      return response;
    }

    const { readable, writable } = new TransformStream<Uint8Array, Uint8Array>(
      undefined,
      new ByteLengthQueuingStrategy({ highWaterMark: this.settings.maxViewerLagBytes }),
    );
    const viewer: Viewer = {
      writer: writable.getWriter(),
      lastSent: "0-0",
      live: false,
      closed: false,
    };
    this.viewers.add(viewer);
    request.signal.addEventListener("abort", () => this.dropViewer(viewer));
    this.send(viewer, encoder.encode(RETRY_FRAME));
    this.ctx.waitUntil(this.admit(viewer, after, url.searchParams.get("archived") === "1"));
    return new Response(readable, { headers: SSE_HEADERS });
  }

  /**
   * The runner appended lines after a quiet spell: poll now instead of at the idle interval.
   * Wakes are coalesced to one poll per active interval: each fan-out costs a write per viewer,
   * so polling per append would cost more than it saves at a thousand viewers.
   */
  async wake(): Promise<void> {
    this.idlePolls = 0;
    this.wakeRequested = true;
    if (this.viewers.size === 0) return;
    const at = Math.max(Date.now(), this.lastPollAt + this.settings.activePollMs);
    const current = await this.ctx.storage.getAlarm();
    if (current === null || current > at) await this.ctx.storage.setAlarm(at);
  }

  /**
   * Closes every viewer's stream, as a deploy or an eviction would (what was sent still
   * arrives): each EventSource reconnects with its last id and resumes exactly. For draining
   * a job's viewers by hand; returns how many there were.
   */
  async disconnectViewers(): Promise<number> {
    const count = this.viewers.size;
    for (const viewer of [...this.viewers]) this.closeViewer(viewer, false);
    return count;
  }

  /**
   * The runner's entries, right after their XADD: fanned out at once, with no read, when they
   * follow on from the object's position; otherwise (a lost push, a restarted object, another
   * writer) the gap is read from Redis first, which brings these entries too. Answers how many
   * viewers there are: the runner pushes only while there are some.
   */
  async push(push: DecodedPush): Promise<LivePushAnswer> {
    this.lastPushAt = Date.now();
    if (this.state.pushed !== true) await this.saveState({ ...this.state, pushed: true });
    if (this.viewers.size > 0 && this.state.position !== null && this.state.ended === null) {
      try {
        await this.takeTurn(() => this.takePush(push));
      } catch (error) {
        console.error(`JobStream:${this.state.jobId ?? "?"} push failed`, error);
      }
      // A backlog (more than one slice, or more in Redis) is worked off by the alarm.
      if (this.unread.length > 0 || this.moreInRedis) await this.arm();
    }
    this.runnerPushing = this.viewers.size > 0;
    return { viewers: this.viewers.size };
  }

  private async takePush(push: DecodedPush): Promise<void> {
    if (this.state.ended !== null) return;
    // Where the tail stands: past what it read and has not sent yet.
    const known = this.unread.at(-1)?.id ?? this.state.position ?? "0-0";
    const last = push.entries.at(-1)?.id ?? push.previous;
    if (last === null || compareEntryIds(last, known) <= 0) return; // nothing new in it
    let from = push.previous === known ? 0 : -1;
    if (from < 0) {
      const at = push.entries.findIndex((entry) => entry.id === known);
      if (at >= 0) from = at + 1;
    }
    if (from < 0 || push.writer !== this.trustedWriter || this.moreInRedis) {
      // Not continuous with what the object has (or from a writer not yet checked): Redis first.
      await this.readRedis();
      this.trustedWriter = push.writer;
      await this.fanOut();
      return;
    }
    this.unread.push(...push.entries.slice(from));
    await this.fanOut();
  }

  /** Runs `step` after the reads and pushes before it. */
  private takeTurn(step: () => Promise<void>): Promise<void> {
    const turn = this.tailTurn.then(step);
    this.tailTurn = turn.catch(() => undefined);
    return turn;
  }

  override async alarm(): Promise<void> {
    if (this.viewers.size === 0) return;
    try {
      if (this.pollDue()) {
        this.lastPollAt = Date.now();
        this.wakeRequested = false;
        await this.poll();
      }
    } catch (error) {
      console.error(`JobStream:${this.state.jobId ?? "?"} poll failed`, error);
      this.idlePolls += 1;
    }
    // Also while Redis fails: the viewers stay connected and resume once it is back.
    if (Date.now() - this.lastFrameAt >= this.settings.heartbeatMs) {
      this.broadcast(encoder.encode(HEARTBEAT_FRAME));
      this.lastFrameAt = Date.now();
    }
    await this.arm();
  }

  /** Brings a new viewer up to the object's read position, then makes it live. */
  private async admit(viewer: Viewer, after: Cursor | null, archived: boolean): Promise<void> {
    try {
      if (this.state.position === null) await this.poll();
      // The Worker says the job is archived, so it has ended: if this object never saw the end
      // (it stopped reading before, and Redis's copy may be gone), the archive has the whole log.
      if (archived && this.state.ended === null && (await this.serveFromArchive(viewer, after)))
        return;
      if (after === null) {
        viewer.lastSent = this.state.position ?? "0-0";
        // Give its EventSource a Last-Event-ID from the start (an id-only frame dispatches no
        // event): dropped before its first line, it still resumes exactly where it joined.
        this.send(viewer, encoder.encode(`id: ${this.state.lastCursor ?? "0-0:0"}\n\n`));
      } else {
        await this.catchUp(viewer, after, archived);
        if (compareEntryIds(viewer.lastSent, after.entryId) < 0) viewer.lastSent = after.entryId;
      }
      if (viewer.closed) return;
      viewer.live = true;
      if (this.state.ended !== null) {
        this.finish(viewer);
        return;
      }
      await this.arm();
    } catch (error) {
      console.error(`JobStream:${this.state.jobId ?? "?"} could not admit a viewer`, error);
      this.closeViewer(viewer, true);
    }
  }

  /** Sends a resuming viewer every line after its cursor, up to the object's read position. */
  private async catchUp(viewer: Viewer, after: Cursor, archived: boolean): Promise<void> {
    const jobId = this.state.jobId;
    if (jobId === null) return;
    const key = logStreamKey(jobId);
    const redis = createRedis(this.env);
    const paced = async (entry: StreamEntry): Promise<void> => {
      // Wait while the viewer has a full queue: a large resume is paced, not dropped as slow.
      while (!viewer.closed && (viewer.writer.desiredSize ?? 1) <= 0) await viewer.writer.ready;
      this.sendEntryTo(viewer, entry, after);
    };
    for (;;) {
      if (viewer.closed) return;
      const position = this.state.position ?? "0-0";
      const pastCursor = compareEntryIds(viewer.lastSent, after.entryId) >= 0;
      // Done once the viewer has everything up to the object's position and its own cursor (a
      // cursor from the history route may lie past what this idle object has read).
      if (compareEntryIds(viewer.lastSent, position) >= 0 && pastCursor) return;
      const covered = pastCursor ? viewer.lastSent : after.entryId;
      // What the object read recently is in memory: serve it from there. The last step (the
      // check above finding the viewer at the position) runs without awaiting, so no poll slips
      // in before the viewer goes live.
      const oldest = this.recent[0];
      if (
        oldest !== undefined &&
        compareEntryIds(oldest.id, covered) <= 0 &&
        compareEntryIds(covered, position) <= 0
      ) {
        // Walk the ring from the first entry the viewer needs (one search, not one per entry).
        // Entries only leave its front, so after a pause the walk finds its place again.
        let i = this.recent.findIndex(
          (entry) =>
            compareEntryIds(entry.id, viewer.lastSent) > 0 &&
            compareEntryIds(entry.id, after.entryId) >= 0,
        );
        while (i >= 0 && i < this.recent.length && !viewer.closed) {
          const entry = this.recent[i];
          if (entry === undefined) break;
          await paced(entry);
          const at = this.recent[i] === entry ? i : this.recent.indexOf(entry);
          if (at < 0) break; // it left the ring meanwhile: check coverage again above
          i = at + 1;
        }
        continue;
      }
      // From Redis, up to its end (past the object's position if need be): the live fan-out
      // later sends this viewer only what lies after what it got here.
      const start = pastCursor ? `(${covered}` : covered;
      const entries = decodeStreamReply(await redis.xrange(key, start, "+", ENTRIES_PER_READ));
      for (const entry of entries) await paced(entry);
      if (entries.length === 0) {
        // Not in Redis any more (its 24 hours ran out): the archive has it, if the job has one.
        if (archived) await this.sendArchived(viewer, after, position);
        for (const mark of [position, after.entryId])
          if (compareEntryIds(viewer.lastSent, mark) < 0) viewer.lastSent = mark;
      }
    }
  }

  /**
   * A job whose Redis Stream is gone (24 hours after its end) but whose log is archived: send the
   * lines after the cursor, grouped by entry as they were live (same events, same ids), then done.
   */
  private async serveFromArchive(viewer: Viewer, after: Cursor | null): Promise<boolean> {
    const end = await this.sendArchived(viewer, after, null);
    if (end === null) return false;
    this.send(viewer, encoder.encode(formatDoneEvent(end.status, end.lastCursor)));
    this.closeViewer(viewer, false);
    return true;
  }

  /**
   * Sends the archived lines after `after` (and after what the viewer already has), up to entry
   * `until` when given, grouped by entry as they were live: same events, same ids. Returns how the
   * job ended, or null when there is no archive.
   */
  private async sendArchived(
    viewer: Viewer,
    after: Cursor | null,
    until: string | null,
  ): Promise<{ status: TerminalStatus; lastCursor: string | null } | null> {
    const jobId = this.state.jobId;
    if (jobId === null) return null;
    const archived = await readArchivedLog(archiveStoreFromEnv(this.env), jobId);
    if (archived === null || archived.end === null) return null;
    // Consecutive lines of one entry make one event, as they did live.
    let group: LogLine[] = [];
    let groupEntry = "";
    const flush = async () => {
      if (group.length === 0) return;
      while (!viewer.closed && (viewer.writer.desiredSize ?? 1) <= 0) await viewer.writer.ready;
      this.send(viewer, encoder.encode(formatLogEvent(group)), true);
      viewer.lastSent = groupEntry;
      group = [];
    };
    for (const line of archived.lines) {
      const cursor = parseCursor(line.cursor);
      if (cursor === null || after === null) continue;
      if (
        compareToCursor(cursor.entryId, cursor.index, after) <= 0 ||
        compareEntryIds(cursor.entryId, viewer.lastSent) <= 0
      )
        continue;
      if (until !== null && compareEntryIds(cursor.entryId, until) > 0) break;
      if (cursor.entryId !== groupEntry) await flush();
      groupEntry = cursor.entryId;
      group.push(line);
    }
    await flush();
    return { status: archived.end, lastCursor: archived.lines.at(-1)?.cursor ?? null };
  }

  private sendEntryTo(viewer: Viewer, entry: StreamEntry, after: Cursor): void {
    if (compareEntryIds(entry.id, viewer.lastSent) <= 0) return;
    const order = compareEntryIds(entry.id, after.entryId);
    if (order < 0) return;
    const bytes = formatEntryEvent(entry, order === 0 ? after.index : -1);
    if (bytes !== "") this.send(viewer, encoder.encode(bytes), true);
    viewer.lastSent = entry.id;
  }

  /** One read of new entries, fanned out to every live viewer as one shared chunk. */
  private poll(): Promise<void> {
    // Concurrent callers (an alarm and a viewer's admission) share one read.
    this.polling ??= this.takeTurn(() => this.readNew()).finally(() => {
      this.polling = null;
    });
    return this.polling;
  }

  /**
   * Whether the alarm should read Redis: always while nobody pushes (the runner has no Worker
   * URL, or predates pushes, or was told nobody watches); once pushes come, only for a backlog,
   * a wake, or when none came for the safety interval (a silent runner).
   */
  private pollDue(): boolean {
    if (this.state.pushed !== true || !this.runnerPushing) return true;
    if (this.unread.length > 0 || this.moreInRedis || this.wakeRequested) return true;
    return Date.now() - Math.max(this.lastPushAt, this.lastPollAt) >= this.settings.safetyPollMs;
  }

  private async readNew(): Promise<void> {
    const jobId = this.state.jobId;
    if (jobId === null || this.state.ended !== null) return;
    const redis = createRedis(this.env);
    const key = logStreamKey(jobId);
    if (this.state.position === null) {
      // A new object starts at the stream's end: viewers without a cursor get live lines only.
      const top = decodeStreamReply(await redis.xrevrange(key, "+", "-", 1))[0];
      await this.saveState({
        ...this.state,
        position: top?.id ?? "0-0",
        lastCursor: top?.lines.at(-1)?.cursor ?? null,
        ended: top?.end ?? null,
      });
      return;
    }
    // Entries read by an earlier poll but not yet fanned out go first: no second read of them.
    if (this.unread.length === 0) await this.readRedis();
    if (this.unread.length === 0) {
      this.idlePolls += 1;
      return;
    }
    this.idlePolls = 0;
    await this.fanOut();
  }

  /** One read of the entries after what the tail has (sent or unread), into `unread`. */
  private async readRedis(): Promise<void> {
    const jobId = this.state.jobId;
    if (jobId === null) return;
    const known = this.unread.at(-1)?.id ?? this.state.position ?? "0-0";
    const read = decodeStreamReply(
      await createRedis(this.env).xrange(logStreamKey(jobId), `(${known}`, "+", ENTRIES_PER_READ),
    );
    this.moreInRedis = read.length === ENTRIES_PER_READ;
    this.unread.push(...read);
  }

  /** Sends the unread entries, up to a slice of the lag bound, to every live viewer as one chunk. */
  private async fanOut(): Promise<void> {
    const read = this.unread;
    if (read.length === 0) return;
    // Fan out at most a quarter of the lag bound per poll: a backlog (the object was idle, or
    // the runner burst) goes out in slices viewers can drain, instead of closing them all as
    // slow at once. The rest waits in memory for the next poll, which comes at once.
    const budget = this.settings.maxViewerLagBytes / 4;
    const entries: StreamEntry[] = [];
    const chunks: string[] = [];
    let bytes = 0;
    for (const entry of read) {
      const chunk = formatEntryEvent(entry);
      if (entries.length > 0 && bytes + chunk.length > budget) break;
      entries.push(entry);
      chunks.push(chunk);
      bytes += chunk.length;
    }
    this.unread = read.slice(entries.length);
    const firstId = entries[0]?.id ?? "0-0";
    let lastCursor = this.state.lastCursor;
    let ended: TerminalStatus | null = null;
    for (const entry of entries) {
      this.remember(entry);
      lastCursor = entry.lines.at(-1)?.cursor ?? lastCursor;
      if (entry.end !== undefined) ended = entry.end;
    }
    const position = entries.at(-1)?.id ?? this.state.position ?? "0-0";
    const shared = encoder.encode(chunks.join(""));
    for (const viewer of this.viewers) {
      if (!viewer.live) continue;
      if (compareEntryIds(viewer.lastSent, firstId) < 0) {
        this.send(viewer, shared);
      } else {
        // Rare: it caught up past the start of this batch; send it the rest only.
        const rest = chunks.filter(
          (_, i) => compareEntryIds(entries[i]?.id ?? "0-0", viewer.lastSent) > 0,
        );
        if (rest.length > 0) this.send(viewer, encoder.encode(rest.join("")));
      }
      if (compareEntryIds(viewer.lastSent, position) < 0) viewer.lastSent = position;
    }
    this.lastFrameAt = Date.now();
    await this.saveState({ ...this.state, position, lastCursor, ended });
    if (ended !== null) {
      for (const viewer of this.viewers) if (viewer.live) this.finish(viewer);
    }
  }

  private remember(entry: StreamEntry): void {
    this.recent.push(entry);
    this.recentLines += entry.lines.length;
    while (this.recentLines > RECENT_LINES && this.recent.length > 1) {
      const dropped = this.recent.shift();
      this.recentLines -= dropped?.lines.length ?? 0;
    }
  }

  private finish(viewer: Viewer): void {
    const status = this.state.ended;
    if (status === null) return;
    this.send(viewer, encoder.encode(formatDoneEvent(status, this.state.lastCursor)));
    this.closeViewer(viewer, false);
  }

  /**
   * Live fan-out cannot wait for one viewer, so a viewer whose unread bytes pass the bound is
   * closed, never fed a gap: it reconnects with its last id. Catch-up waits for `ready`
   * instead (`paced`), so a large resume is not mistaken for a slow viewer.
   */
  private send(viewer: Viewer, bytes: Uint8Array, paced = false): void {
    if (viewer.closed) return;
    viewer.writer.write(bytes).catch(() => this.dropViewer(viewer));
    const desired = viewer.writer.desiredSize;
    if (!paced && desired !== null && desired < 0) this.closeViewer(viewer, true);
  }

  /** Heartbeats go to live viewers with nothing unread: one still reading needs no keepalive. */
  private broadcast(bytes: Uint8Array): void {
    for (const viewer of this.viewers) {
      if (viewer.live && (viewer.writer.desiredSize ?? 0) >= this.settings.maxViewerLagBytes)
        this.send(viewer, bytes);
    }
  }

  private closeViewer(viewer: Viewer, abort: boolean): void {
    if (viewer.closed) return;
    viewer.closed = true;
    this.viewers.delete(viewer);
    const done = abort ? viewer.writer.abort("closed by the server") : viewer.writer.close();
    done.catch(() => undefined);
  }

  private dropViewer(viewer: Viewer): void {
    this.closeViewer(viewer, true);
  }

  private async arm(): Promise<void> {
    if (this.viewers.size === 0 || this.state.ended !== null) return;
    // A backlog (entries in memory or a full page last read) is worked off at once.
    const backlog = this.unread.length > 0 || this.moreInRedis;
    const pollAt =
      backlog || this.wakeRequested
        ? Math.max(Date.now(), this.lastPollAt + (backlog ? 0 : this.settings.activePollMs))
        : this.state.pushed === true && this.runnerPushing
          ? Math.max(this.lastPushAt, this.lastPollAt) + this.settings.safetyPollMs
          : this.lastPollAt +
            Math.min(
              this.settings.idlePollMaxMs,
              this.settings.activePollMs * 2 ** Math.min(this.idlePolls, 16),
            );
    const at = Math.max(Date.now(), Math.min(pollAt, this.lastFrameAt + this.settings.heartbeatMs));
    const current = await this.ctx.storage.getAlarm();
    if (current === null || current > at) await this.ctx.storage.setAlarm(at);
  }

  private async saveState(state: StoredState): Promise<void> {
    this.state = state;
    await this.ctx.storage.put("state", state);
  }
}

function jsonError(status: number, code: string, message: string): Response {
  return Response.json({ error: { code, message } }, { status });
}
