import type { Redis } from "@upstash/redis/cloudflare";
import type { ArchiveStore } from "../log/archive-store.ts";
import { gapLine } from "../log/history.ts";
import { type LogGap, type LogItem, LogReader } from "../log/reader.ts";
import {
  compareEntryIds,
  decodeStreamReply,
  nextLineAfter,
  type StreamEntry,
} from "../shared/entry.ts";
import type { TerminalStatus } from "../shared/job.ts";
import { logStreamKey } from "../shared/keys.ts";
import type { DecodedPush } from "../shared/live-push.ts";
import { formatEntryEvent, formatLogEvent } from "../shared/sse.ts";
import type { FanOutSlice } from "./viewers.ts";

const ENTRIES_PER_READ = 256;
// The position in storage may be this far behind the one in memory. An object that restarts
// reads on from there, and its resuming viewers get nothing twice (the fan-out skips what a
// viewer already has, catch-up reads from each viewer's own cursor). Saving after every
// fan-out would be one storage write per push, some 50,000 an hour per watched job.
const SAVE_POSITION_EVERY_MS = 1_000;
const encoder = new TextEncoder();
// Entries kept in memory so a viewer that reconnects soon after a drop resumes without a read.
const RECENT_LINES = 5_000;
// Pushes that queue while a turn is slow (a Redis read retried, the archive) are held up to this
// many slices (the lag bound, 1 MiB by default, as much as the runner queues behind its own
// push in flight): the runner is answered before the fan-out, so nothing else holds it back.
// Past that they are dropped, and the gap is read from Redis, which has them all.
const QUEUED_PUSH_SLICES = 4;

/** What the tail keeps in storage, so an evicted or redeployed object resumes where it was. */
export interface TailState {
  /** The id of the last entry fanned out; null until the object first looked at the stream. */
  readonly position: string | null;
  readonly lastCursor: string | null;
  readonly ended: TerminalStatus | null;
  /** The runner pushes this job's entries: polls are only the safety net then. */
  readonly pushed?: boolean;
  /** The line number (`n`) the entry after `position` must start at; null when unknown. */
  readonly nextLine?: number | null;
}

export type { DecodedPush };

/** A queued push: the pushes that followed on from it joined its entries. */
interface QueuedPush {
  readonly writer: string;
  readonly previous: string | null;
  readonly entries: StreamEntry[];
}

/** What the tail needs from the object that owns it. */
export interface TailHost {
  readonly jobId: string;
  redis(): Redis;
  /** Where a hole in the live copy is read from. */
  archive(): ArchiveStore;
  /**
   * Stores the state, and need not hold back what goes out meanwhile: the stored state is only
   * where a restarted object reads on from (Redis has every line; viewers resume by cursor).
   */
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

/** An entry taken but not fanned out yet, with the holes to announce right before it. */
interface Pending {
  readonly entry: StreamEntry;
  readonly gaps: readonly LogGap[];
}

/** A hole in the live copy after what the tail has, read from the archive a slice per turn. */
interface Hole {
  readonly items: AsyncGenerator<LogItem, { ended: boolean }>;
  /** The line number where the live copy resumes after the hole. */
  readonly resumesAt: number;
  /** The entry the hole starts after. */
  readonly after: string;
  /** The gaps that waited for an entry when the hole opened (kept if the archive read fails). */
  readonly carried: readonly LogGap[];
}

// What an entry of the archive costs as an event, about: its texts and each line's JSON around
// them. Only to size a slice of a hole; the fan-out measures the real bytes.
const EVENT_BYTES_PER_LINE = 96;

/**
 * The job's position in its Redis Stream and what lies just behind and ahead of it: the
 * entries read or pushed but not fanned out yet (`unread`), and the recent ones (`recent`) a
 * resuming viewer is served from. New entries come from a read or from a push; both take their
 * turn, so every entry goes out once and in order. A push is trusted, with no read, only when
 * it follows on from the position and comes from a writer a read has checked.
 *
 * Ids that follow on are not enough: the runner keeps only the head and the tail of a long log
 * in Redis (XDEL of the archived middle), so an object far behind reads the first entry of the
 * tail right after the head. Every entry's line number (`n`) is checked against the line after
 * the last one taken, from a read or a push; at a jump the tail reads the hole from the archive
 * (a slice per turn), announces it as catch-up does (a system gap line right before the next
 * line) and counts what the archive lacks as lost. It never passes over a hole in silence.
 */
export class Tail {
  state: TailState = { position: null, lastCursor: null, ended: null };
  /** Recent entries, oldest first (about RECENT_LINES lines). */
  readonly recent: StreamEntry[] = [];
  private recentLines = 0;
  private unread: Pending[] = [];
  /** The last read from Redis filled its page: there may be more right behind it. */
  private moreInRedis = false;
  /** A hole being read from the archive: Redis is read again once it is through. */
  private hole: Hole | null = null;
  /** Gaps found but not yet announced: they go out right before the next entry taken. */
  private gapsAhead: LogGap[] = [];
  /** The line number the next entry taken must start at (after sent and unread); null: unknown. */
  private aheadLine: number | null = null;
  /** The writer whose pushes were last found continuous with Redis: pushes from another are checked first. */
  private trustedWriter: string | null = null;
  /** Reads in a row that found nothing new. */
  idleReads = 0;
  private turn: Promise<void> = Promise.resolve();
  /** When the state was last stored, and whether memory has moved on since. */
  private savedAt = Number.NEGATIVE_INFINITY;
  private unsaved = false;
  private reading: Promise<void> | null = null;
  /** Pushes waiting for their turn (queuePush), and about how many bytes they hold. */
  private pushes: QueuedPush[] = [];
  private pushBytes = 0;

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
        ...(state.nextLine === undefined ? {} : { nextLine: state.nextLine }),
      };
    this.aheadLine = this.state.nextLine ?? null;
  }

  get position(): string | null {
    return this.state.position;
  }

  /** Entries wait in memory, a read filled its page or a hole is being read: fan out at once. */
  get backlog(): boolean {
    return this.unread.length > 0 || this.moreInRedis || this.hole !== null;
  }

  /** The id of the last entry the tail has, sent or unread. */
  private get known(): string {
    return this.unread.at(-1)?.entry.id ?? this.state.position ?? "0-0";
  }

  /** One read of new entries (or the unread ones first), fanned out. Concurrent callers share it. */
  read(): Promise<void> {
    this.reading ??= this.inTurn(() => this.readNew()).finally(() => {
      this.reading = null;
    });
    return this.reading;
  }

  /**
   * The runner's entries, right after their XADD, held for takePushes: pushes that come while
   * the object is busy go out together. Taken, they are fanned out at once when they follow on
   * from the position; otherwise (a lost push, a restarted object, another writer) the gap is
   * read from Redis first, which brings these entries too.
   */
  queuePush(push: DecodedPush): void {
    const bytes = pushBytes(push);
    if (
      this.pushes.length > 0 &&
      this.pushBytes + bytes > QUEUED_PUSH_SLICES * this.settings.sliceBytes
    ) {
      // Too much waits: only where it ends is kept, as a keepalive naming it would, so the
      // turn reads the gap from Redis.
      this.pushes = [{ writer: push.writer, previous: lastIdOf(push), entries: [] }];
      this.pushBytes = 0;
      return;
    }
    this.pushBytes += bytes;
    const last = this.pushes.at(-1);
    // One that follows on from the one before (the usual case) joins it: one fan-out for both.
    if (last !== undefined && last.writer === push.writer && lastIdOf(last) === push.previous)
      for (const entry of push.entries) last.entries.push(entry);
    else this.pushes.push({ ...push, entries: [...push.entries] });
  }

  /** About how many bytes the queued pushes hold (bounded: see QUEUED_PUSH_SLICES). */
  get queuedPushBytes(): number {
    return this.pushBytes;
  }

  /**
   * Takes the pushes queued so far, in one turn after the reads and pushes before it. Each is
   * tried, as in a turn of its own, though one before it failed; the first failure is thrown.
   */
  async takePushes(): Promise<void> {
    if (this.pushes.length === 0) return;
    if (this.state.pushed !== true) await this.save({ ...this.state, pushed: true });
    await this.inTurn(async () => {
      const pushes = this.pushes;
      this.pushes = [];
      this.pushBytes = 0;
      if (this.state.position === null) return;
      let failure: { readonly error: unknown } | null = null;
      for (const push of pushes) {
        try {
          await this.takePush(push);
        } catch (error) {
          failure ??= { error };
        }
      }
      if (failure !== null) throw failure.error;
    });
  }

  private async takePush(push: DecodedPush): Promise<void> {
    if (this.state.ended !== null) return;
    // Where the tail stands: past what it read and has not sent yet.
    const known = this.known;
    const last = push.entries.at(-1)?.id ?? push.previous;
    if (last === null || compareEntryIds(last, known) <= 0) return; // nothing new in it
    let from = push.previous === known ? 0 : -1;
    if (from < 0) {
      const at = push.entries.findIndex((entry) => entry.id === known);
      if (at >= 0) from = at + 1;
    }
    if (this.hole !== null) {
      // A hole is being read from the archive: its next slice first, Redis (and so these
      // entries) after it.
      await this.readHole(this.hole);
    } else if (from < 0 || push.writer !== this.trustedWriter || this.moreInRedis) {
      // Not continuous with what the object has (or from a writer not yet checked): Redis first.
      await this.readRedis();
      this.trustedWriter = push.writer;
    } else {
      // Checked like a read: a jump in line numbers opens a hole, and the rest of the push is
      // read from Redis after it.
      this.take(push.entries.slice(from));
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
      const nextLine = top === undefined ? 0 : (nextLineAfter(top) ?? null);
      this.aheadLine = nextLine;
      await this.save({
        ...this.state,
        position: top?.id ?? "0-0",
        lastCursor: top?.lines.at(-1)?.cursor ?? null,
        ended: top?.end ?? null,
        nextLine,
      });
      return;
    }
    // Entries read earlier but not yet fanned out go first: no second read of them. Then a
    // hole being read from the archive, then Redis.
    if (this.unread.length === 0) {
      if (this.hole !== null) await this.readHole(this.hole);
      else await this.readRedis();
    }
    if (this.unread.length === 0) {
      // A hole that held no entry (every line of it lost) is no idle read: Redis comes next.
      if (!this.backlog) this.idleReads += 1;
      return;
    }
    this.idleReads = 0;
    await this.fanOutSlice();
  }

  /** One read of the entries after what the tail has (sent or unread), into `unread`. */
  private async readRedis(): Promise<void> {
    const reply = await this.host
      .redis()
      .xrange(logStreamKey(this.host.jobId), `(${this.known}`, "+", ENTRIES_PER_READ);
    const read = decodeStreamReply(reply);
    this.moreInRedis = read.length === ENTRIES_PER_READ;
    this.take(read);
  }

  /**
   * Takes entries that follow on by id into `unread`, up to the first jump in their line
   * numbers: there a hole opens, read from the archive next; what lies after it is read from
   * Redis again once the hole is through.
   */
  private take(entries: readonly StreamEntry[]): void {
    for (const entry of entries) {
      const expected = this.aheadLine;
      if (expected !== null && entry.firstLine !== undefined && entry.firstLine > expected) {
        this.openHole(entry, expected, entry.firstLine);
        return;
      }
      this.queue(entry);
    }
  }

  private queue(entry: StreamEntry): void {
    this.unread.push({ entry, gaps: this.gapsAhead });
    this.gapsAhead = [];
    this.aheadLine =
      nextLineAfter(entry) ??
      (this.aheadLine === null ? null : this.aheadLine + entry.lines.length);
  }

  /** Lines `expected` up to `resumesAt` are not in Redis before `until`: the archive is asked. */
  private openHole(until: StreamEntry, expected: number, resumesAt: number): void {
    const reader = new LogReader(this.host.redis(), this.host.archive(), this.host.jobId);
    this.hole = {
      items: reader.archivedBetween(
        { entryId: this.known, index: Number.MAX_SAFE_INTEGER },
        until.id,
        expected,
        resumesAt,
      ),
      resumesAt,
      after: this.known,
      carried: [...this.gapsAhead],
    };
  }

  /** The hole's next slice from the archive (about a fan-out's worth), into `unread`. */
  private async readHole(hole: Hole): Promise<void> {
    let bytes = 0;
    while (bytes < this.settings.sliceBytes) {
      let next: IteratorResult<LogItem, { ended: boolean }>;
      try {
        next = await hole.items.next();
      } catch (error) {
        // The archive failed: the next read finds the jump again and reopens the hole from
        // what was taken, which finds again the gaps found since.
        this.hole = null;
        this.gapsAhead = this.known === hole.after ? [...hole.carried] : [];
        throw error;
      }
      if (next.done === true) {
        // Served, or counted as lost (that gap waits for the entry where Redis resumes).
        this.hole = null;
        this.aheadLine = hole.resumesAt;
        this.moreInRedis = true;
        return;
      }
      const item = next.value;
      if (item.kind === "gap") {
        this.gapsAhead.push(item.gap);
        continue;
      }
      this.queue(item.entry);
      for (const line of item.entry.lines) bytes += line.text.length + EVENT_BYTES_PER_LINE;
      if (item.entry.end !== undefined) {
        this.hole = null;
        return;
      }
    }
  }

  /** Fans the unread entries out, up to a slice; the rest waits for the next turn. */
  private async fanOutSlice(): Promise<void> {
    if (this.unread.length === 0) return;
    const ids: string[] = [];
    const events: string[] = [];
    let bytes = 0;
    let lastCursor = this.state.lastCursor;
    let nextLine = this.state.nextLine ?? null;
    let ended: TerminalStatus | null = null;
    for (const { entry, gaps } of this.unread) {
      const event = gapNotices(gaps, lastCursor, entry) + formatEntryEvent(entry);
      if (ids.length > 0 && bytes + event.length > this.settings.sliceBytes) break;
      ids.push(entry.id);
      events.push(event);
      bytes += event.length;
      // A catch-up walks the recent entries without looking at line numbers: lost lines must
      // not lie inside them (the log reader announces those).
      if (gaps.some((gap) => gap.where === "lost")) this.forgetRecent();
      this.remember(entry);
      lastCursor = entry.lines.at(-1)?.cursor ?? lastCursor;
      nextLine = nextLineAfter(entry) ?? (nextLine === null ? null : nextLine + entry.lines.length);
      if (entry.end !== undefined) ended = entry.end;
    }
    this.unread = this.unread.slice(ids.length);
    const position = ids.at(-1) ?? this.state.position ?? "0-0";
    this.host.fanOut({
      after: this.state.position ?? "0-0",
      ids,
      events,
      shared: encoder.encode(events.join("")),
      position,
    });
    // The position moves on at every fan-out; it is stored now and then (and the end at once).
    await this.save(
      { ...this.state, position, lastCursor, ended, nextLine },
      ended === null && Date.now() - this.savedAt < SAVE_POSITION_EVERY_MS,
    );
    if (ended !== null) this.host.ended(ended, lastCursor);
  }

  private forgetRecent(): void {
    this.recent.length = 0;
    this.recentLines = 0;
  }

  private remember(entry: StreamEntry): void {
    this.recent.push(entry);
    this.recentLines += entry.lines.length;
    while (this.recentLines > RECENT_LINES && this.recent.length > 1) {
      const dropped = this.recent.shift();
      this.recentLines -= dropped?.lines.length ?? 0;
    }
  }

  /** Stores a position the last fan-outs moved on without storing (the object's alarm calls it). */
  async saveIfBehind(): Promise<void> {
    if (this.unsaved) await this.save(this.state);
  }

  /** Takes `state`; stores it unless `later` (then saveIfBehind does). */
  private async save(state: TailState, later = false): Promise<void> {
    this.state = state;
    if (later) {
      this.unsaved = true;
      return;
    }
    this.unsaved = false;
    this.savedAt = Date.now();
    await this.host.save(state);
  }
}

/** About what a push holds: its lines' texts and, per line, what an event adds around one. */
function pushBytes(push: DecodedPush): number {
  let bytes = 0;
  for (const entry of push.entries)
    for (const line of entry.lines) bytes += line.text.length + EVENT_BYTES_PER_LINE;
  return bytes;
}

/** The id a push ends at: its last entry's, or (a keepalive) the one it names. */
function lastIdOf(push: DecodedPush): string | null {
  return push.entries.at(-1)?.id ?? push.previous;
}

/**
 * The system lines announcing the holes right before `entry`, as catch-up and history word them;
 * their cursor is the last line's before the hole, so a resume from it misses nothing.
 */
function gapNotices(gaps: readonly LogGap[], lastCursor: string | null, entry: StreamEntry) {
  if (gaps.length === 0) return "";
  // A terminal entry may hold no line: the notice then takes the time it goes out.
  const next = entry.lines[0] ?? { ts: new Date().toISOString(), phase: "system" };
  return formatLogEvent(gaps.map((gap) => gapLine(gap, lastCursor ?? "0-0:0", next)));
}
