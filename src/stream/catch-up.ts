import type { Redis } from "@upstash/redis/cloudflare";
import type { ArchiveStore } from "../log/archive-store.ts";
import { gapLine } from "../log/history.ts";
import { type LogGap, LogReader } from "../log/reader.ts";
import { type Cursor, compareEntryIds, type StreamEntry } from "../shared/entry.ts";
import type { TerminalStatus } from "../shared/job.ts";
import { formatEntryEvent, formatLogEvent } from "../shared/sse.ts";
import type { Viewer, Viewers } from "./viewers.ts";

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
 * fan-out slips in before the caller makes it live. With `untilEnd`, to the end of the log
 * instead (from Redis or the archive), whatever the tail's position.
 */
export async function catchUp(
  host: CatchUpHost,
  viewer: Viewer,
  after: Cursor,
  untilEnd = false,
): Promise<TerminalStatus | null> {
  const reader = new LogReader(host.redis(), host.archive(), host.jobId);
  const paced = async (entry: StreamEntry): Promise<void> => {
    await host.viewers.ready(viewer);
    sendEntryTo(host.viewers, viewer, entry, after);
  };
  for (;;) {
    if (viewer.closed) return null;
    const position = host.position();
    const pastCursor = compareEntryIds(viewer.lastSent, after.entryId) >= 0;
    // Done once the viewer has everything up to the position and its own cursor (a cursor from
    // the history route may lie past what an idle object has read).
    if (!untilEnd && compareEntryIds(viewer.lastSent, position) >= 0 && pastCursor) return null;
    const covered = pastCursor ? viewer.lastSent : after.entryId;
    const oldest = host.recent[0];
    if (
      !untilEnd &&
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
    // From the log reader (Redis, else the archive: a hole in the live copy, or the whole log
    // once Redis's 24 hours are over), up to the end of what exists: the live fan-out later
    // sends this viewer only what lies after what it got here. A hole is announced first.
    const from: Cursor = pastCursor
      ? { entryId: viewer.lastSent, index: Number.MAX_SAFE_INTEGER }
      : after;
    let previous = pastCursor ? null : `${after.entryId}:${after.index}`;
    let gap: LogGap | null = null;
    let sent = false;
    for await (const item of reader.forward(from)) {
      if (viewer.closed) return null;
      if (item.kind === "gap") {
        gap = item.gap;
        continue;
      }
      const entry = item.entry;
      if (compareEntryIds(entry.id, viewer.lastSent) <= 0) continue;
      await host.viewers.ready(viewer);
      const first = entry.lines[0];
      let text = "";
      if (gap !== null && first !== undefined) {
        text += formatLogEvent([gapLine(gap, previous ?? "0-0:0", first)]);
        gap = null;
      }
      text += formatEntryEvent(entry);
      if (text !== "") host.viewers.sendText(viewer, text, true);
      viewer.lastSent = entry.id;
      previous = entry.lines.at(-1)?.cursor ?? previous;
      sent = true;
      if (entry.end !== undefined) return entry.end;
    }
    if (!sent) {
      if (untilEnd) return null;
      // Nothing more anywhere: the viewer is at the end of what exists.
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
 * A job whose Redis Stream is gone (24 hours after its end) but whose log is archived: a viewer
 * with a cursor gets the lines after it as they were live, then `done`; one without, `done`.
 * False when there is no complete archive.
 */
export async function serveFromArchive(
  host: CatchUpHost,
  viewer: Viewer,
  after: Cursor | null,
): Promise<boolean> {
  const reader = new LogReader(host.redis(), host.archive(), host.jobId);
  const end = await (await reader.archive())?.end();
  if (end === null || end === undefined) return false;
  // To the log's end, not to the tail's position: this object stopped following before the end
  // (its viewers had all gone), so its position says nothing of what they have not seen.
  if (after !== null) await catchUp(host, viewer, after, true);
  host.viewers.finish(viewer, end, null);
  return true;
}
