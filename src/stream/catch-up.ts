import type { Redis } from "@upstash/redis/cloudflare";
import { type ArchiveStore, readArchivedLog } from "../log/archive.ts";
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
import { logStreamKey } from "../shared/keys.ts";
import { formatEntryEvent, formatLogEvent } from "../shared/sse.ts";
import type { Viewer, Viewers } from "./viewers.ts";

const ENTRIES_PER_READ = 256;

/** What a catch-up reads from: the tail (its position and recent entries), Redis, the archive. */
export interface CatchUpHost {
  readonly jobId: string;
  readonly viewers: Viewers;
  /** The tail's position now (it moves while a catch-up awaits). */
  position(): string;
  /** The tail's recent entries, oldest first: entries only leave its front. */
  readonly recent: readonly StreamEntry[];
  redis(): Redis;
  archive(): ArchiveStore;
}

/**
 * Sends a resuming viewer every line after its cursor, up to the tail's position: from the
 * recent entries in memory where they reach back far enough, else from Redis, else (Redis's copy
 * is gone) from the archive. Paced by the viewer's queue, so a large resume is not mistaken for
 * a slow viewer. The last step, finding the viewer at the position, runs without awaiting, so no
 * fan-out slips in before the caller makes it live.
 */
export async function catchUp(
  host: CatchUpHost,
  viewer: Viewer,
  after: Cursor,
  archived: boolean,
): Promise<void> {
  const paced = async (entry: StreamEntry): Promise<void> => {
    await host.viewers.ready(viewer);
    sendEntryTo(host.viewers, viewer, entry, after);
  };
  for (;;) {
    if (viewer.closed) return;
    const position = host.position();
    const pastCursor = compareEntryIds(viewer.lastSent, after.entryId) >= 0;
    // Done once the viewer has everything up to the position and its own cursor (a cursor from
    // the history route may lie past what an idle object has read).
    if (compareEntryIds(viewer.lastSent, position) >= 0 && pastCursor) return;
    const covered = pastCursor ? viewer.lastSent : after.entryId;
    const oldest = host.recent[0];
    if (
      oldest !== undefined &&
      compareEntryIds(oldest.id, covered) <= 0 &&
      compareEntryIds(covered, position) <= 0
    ) {
      // Walk the recent entries from the first the viewer needs (one search, not one per
      // entry). Entries only leave their front, so after a pause the walk finds its place again.
      let i = host.recent.findIndex(
        (entry) =>
          compareEntryIds(entry.id, viewer.lastSent) > 0 &&
          compareEntryIds(entry.id, after.entryId) >= 0,
      );
      while (i >= 0 && i < host.recent.length && !viewer.closed) {
        const entry = host.recent[i];
        if (entry === undefined) break;
        await paced(entry);
        const at = host.recent[i] === entry ? i : host.recent.indexOf(entry);
        if (at < 0) break; // it left the ring meanwhile: check coverage again above
        i = at + 1;
      }
      continue;
    }
    // From Redis, up to its end (past the position if need be): the live fan-out later sends
    // this viewer only what lies after what it got here.
    const start = pastCursor ? `(${covered}` : covered;
    const reply = await host.redis().xrange(logStreamKey(host.jobId), start, "+", ENTRIES_PER_READ);
    const entries = decodeStreamReply(reply);
    for (const entry of entries) await paced(entry);
    if (entries.length === 0) {
      // Not in Redis any more (its 24 hours ran out): the archive has it, if the job has one.
      if (archived) await sendArchived(host, viewer, after, position);
      for (const mark of [position, after.entryId])
        if (compareEntryIds(viewer.lastSent, mark) < 0) viewer.lastSent = mark;
    }
  }
}

function sendEntryTo(viewers: Viewers, viewer: Viewer, entry: StreamEntry, after: Cursor): void {
  if (compareEntryIds(entry.id, viewer.lastSent) <= 0) return;
  const order = compareEntryIds(entry.id, after.entryId);
  if (order < 0) return;
  const text = formatEntryEvent(entry, order === 0 ? after.index : -1);
  if (text !== "") viewers.sendText(viewer, text, true);
  viewer.lastSent = entry.id;
}

/**
 * Sends the archived lines after `after` (and after what the viewer already has), up to entry
 * `until` when given, grouped by entry as they were live: same events, same ids. Returns how the
 * job ended, or null when there is no archive.
 */
export async function sendArchived(
  host: CatchUpHost,
  viewer: Viewer,
  after: Cursor | null,
  until: string | null,
): Promise<{ status: TerminalStatus; lastCursor: string | null } | null> {
  const archived = await readArchivedLog(host.archive(), host.jobId);
  if (archived === null || archived.end === null) return null;
  // Consecutive lines of one entry make one event, as they did live.
  let group: LogLine[] = [];
  let groupEntry = "";
  const flush = async () => {
    if (group.length === 0) return;
    await host.viewers.ready(viewer);
    host.viewers.sendText(viewer, formatLogEvent(group), true);
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

/**
 * A job whose Redis Stream is gone (24 hours after its end) but whose log is archived: sends the
 * lines after the cursor as they were live, then `done`. False when there is no archive.
 */
export async function serveFromArchive(
  host: CatchUpHost,
  viewer: Viewer,
  after: Cursor | null,
): Promise<boolean> {
  const end = await sendArchived(host, viewer, after, null);
  if (end === null) return false;
  host.viewers.finish(viewer, end.status, end.lastCursor);
  return true;
}
