import type { Redis } from "@upstash/redis/cloudflare";
import { compareEntryIds, decodeStreamReply, type StreamEntry } from "../shared/entry.ts";
import type { TerminalStatus } from "../shared/job.ts";
import { logStreamKey } from "../shared/keys.ts";
import { formatEntryEvent } from "../shared/sse.ts";
import type { FanOutSlice } from "./viewers.ts";

const ENTRIES_PER_READ = 256;
// Entries kept in memory so a viewer that reconnects soon after a drop resumes without a read.
const RECENT_LINES = 5_000;

/** What the tail keeps in storage, so an evicted or redeployed object resumes where it was. */
export interface TailState {
  /** The id of the last entry fanned out; null until the object first looked at the stream. */
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

/** What the tail needs from the object that owns it. */
export interface TailHost {
  readonly jobId: string;
  redis(): Redis;
  save(state: TailState): Promise<void>;
  /** A slice of entries to send to every live viewer. */
  fanOut(slice: FanOutSlice): void;
  /** The terminal entry went out: the job ended so. */
  ended(status: TerminalStatus, lastCursor: string | null): void;
}

export interface TailSettings {
  /** At most this many bytes go out per fan-out: a backlog goes in slices viewers can drain. */
  readonly sliceBytes: number;
}

/**
 * The job's position in its Redis Stream and what lies just behind and ahead of it: the
 * entries read or pushed but not fanned out yet (`unread`), and the recent ones (`recent`) a
 * resuming viewer is served from. New entries come from a read or from a push; both take their
 * turn, so every entry goes out once and in order. A push is trusted, with no read, only when
 * it follows on from the position and comes from a writer a read has checked.
 */
export class Tail {
  state: TailState = { position: null, lastCursor: null, ended: null };
  /** Recent entries, oldest first (about RECENT_LINES lines). */
  readonly recent: StreamEntry[] = [];
  private recentLines = 0;
  private unread: StreamEntry[] = [];
  /** The last read from Redis filled its page: there may be more right behind it. */
  private moreInRedis = false;
  /** The writer whose pushes were last found continuous with Redis: pushes from another are checked first. */
  private trustedWriter: string | null = null;
  /** Reads in a row that found nothing new. */
  idleReads = 0;
  private turn: Promise<void> = Promise.resolve();
  private reading: Promise<void> | null = null;

  private readonly host: TailHost;
  private readonly settings: TailSettings;

  constructor(host: TailHost, settings: TailSettings) {
    this.host = host;
    this.settings = settings;
  }

  load(state: TailState | undefined): void {
    if (state !== undefined)
      this.state = {
        position: state.position,
        lastCursor: state.lastCursor,
        ended: state.ended,
        ...(state.pushed === undefined ? {} : { pushed: state.pushed }),
      };
  }

  get position(): string | null {
    return this.state.position;
  }

  /** Entries wait in memory, or a read filled its page: the next fan-out should come at once. */
  get backlog(): boolean {
    return this.unread.length > 0 || this.moreInRedis;
  }

  /** One read of new entries (or the unread ones first), fanned out. Concurrent callers share it. */
  read(): Promise<void> {
    this.reading ??= this.inTurn(() => this.readNew()).finally(() => {
      this.reading = null;
    });
    return this.reading;
  }

  /**
   * The runner's entries, right after their XADD: fanned out at once when they follow on from
   * the position; otherwise (a lost push, a restarted object, another writer) the gap is read
   * from Redis first, which brings these entries too.
   */
  async push(push: DecodedPush): Promise<void> {
    if (this.state.pushed !== true) await this.save({ ...this.state, pushed: true });
    if (this.state.position === null || this.state.ended !== null) return;
    await this.inTurn(() => this.takePush(push));
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
    } else {
      this.unread.push(...push.entries.slice(from));
    }
    await this.fanOutSlice();
  }

  /** Runs `step` after the reads and pushes before it. */
  private inTurn(step: () => Promise<void>): Promise<void> {
    const turn = this.turn.then(step);
    this.turn = turn.catch(() => undefined);
    return turn;
  }

  private async readNew(): Promise<void> {
    if (this.state.ended !== null) return;
    if (this.state.position === null) {
      // A new object starts at the stream's end: viewers without a cursor get live lines only.
      const reply = await this.host.redis().xrevrange(logStreamKey(this.host.jobId), "+", "-", 1);
      const top = decodeStreamReply(reply)[0];
      await this.save({
        ...this.state,
        position: top?.id ?? "0-0",
        lastCursor: top?.lines.at(-1)?.cursor ?? null,
        ended: top?.end ?? null,
      });
      return;
    }
    // Entries read earlier but not yet fanned out go first: no second read of them.
    if (this.unread.length === 0) await this.readRedis();
    if (this.unread.length === 0) {
      this.idleReads += 1;
      return;
    }
    this.idleReads = 0;
    await this.fanOutSlice();
  }

  /** One read of the entries after what the tail has (sent or unread), into `unread`. */
  private async readRedis(): Promise<void> {
    const known = this.unread.at(-1)?.id ?? this.state.position ?? "0-0";
    const reply = await this.host
      .redis()
      .xrange(logStreamKey(this.host.jobId), `(${known}`, "+", ENTRIES_PER_READ);
    const read = decodeStreamReply(reply);
    this.moreInRedis = read.length === ENTRIES_PER_READ;
    this.unread.push(...read);
  }

  /** Fans the unread entries out, up to a slice; the rest waits for the next turn. */
  private async fanOutSlice(): Promise<void> {
    if (this.unread.length === 0) return;
    const ids: string[] = [];
    const events: string[] = [];
    let bytes = 0;
    let lastCursor = this.state.lastCursor;
    let ended: TerminalStatus | null = null;
    for (const entry of this.unread) {
      const event = formatEntryEvent(entry);
      if (ids.length > 0 && bytes + event.length > this.settings.sliceBytes) break;
      ids.push(entry.id);
      events.push(event);
      bytes += event.length;
      this.remember(entry);
      lastCursor = entry.lines.at(-1)?.cursor ?? lastCursor;
      if (entry.end !== undefined) ended = entry.end;
    }
    this.unread = this.unread.slice(ids.length);
    const position = ids.at(-1) ?? this.state.position ?? "0-0";
    this.host.fanOut({
      ids,
      events,
      shared: new TextEncoder().encode(events.join("")),
      position,
    });
    await this.save({ ...this.state, position, lastCursor, ended });
    if (ended !== null) this.host.ended(ended, lastCursor);
  }

  private remember(entry: StreamEntry): void {
    this.recent.push(entry);
    this.recentLines += entry.lines.length;
    while (this.recentLines > RECENT_LINES && this.recent.length > 1) {
      const dropped = this.recent.shift();
      this.recentLines -= dropped?.lines.length ?? 0;
    }
  }

  private async save(state: TailState): Promise<void> {
    this.state = state;
    await this.host.save(state);
  }
}
