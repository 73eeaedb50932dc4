import { type Cursor, compareToCursor, type LogLine, parseCursor } from "../shared/entry.ts";
import type { LogGap, LogReader } from "./reader.ts";

export const DEFAULT_PAGE_LIMIT = 100;
export const MAX_PAGE_LIMIT = 500;

export interface HistoryQuery {
  readonly before?: Cursor;
  readonly after?: Cursor;
  readonly limit: number;
}

export interface HistoryPage {
  /** Chronological. Lost lines show as a system line with `gap` right before the next line. */
  readonly lines: LogLine[];
  /** Whether more lines lie beyond this page in the direction it was read. */
  readonly hasMore: boolean;
}

/** The system line that says where lines are not; see `LogLine.gap`. */
export function gapLine(gap: LogGap, cursor: string, next: Pick<LogLine, "ts" | "phase">): LogLine {
  const count = gap.lines === null ? "Some" : gap.lines.toLocaleString("en-US");
  const one = gap.lines === 1;
  const text =
    gap.where === "archive"
      ? `${count} ${one ? "line here is" : "lines here are"} no longer in the live log; ${one ? "it is" : "they are"} served from the archive.`
      : `${count} ${one ? "line is" : "lines are"} missing here: ${one ? "it was" : "they were"} lost before ${one ? "it" : "they"} could be archived.`;
  return { ts: next.ts, source: "system", phase: next.phase, text, cursor, gap };
}

/**
 * Lines after `after` (oldest first), or before `before` (newest first, then put in order), or
 * the newest lines when neither is given; a page never holds more than `limit` lines (gap lines
 * not counted). A page boundary may fall inside an entry. Lines that left Redis come from the
 * archive through the same reader, so a page reads the same whatever holds it.
 */
export async function readHistory(reader: LogReader, query: HistoryQuery): Promise<HistoryPage> {
  const { after, before, limit } = query;
  const lines: LogLine[] = [];
  let real = 0;
  let hasMore = false;
  if (after !== undefined) {
    let lost: LogGap | null = null;
    let previous = `${after.entryId}:${after.index}`;
    read: for await (const item of reader.forward(after)) {
      if (item.kind === "gap") {
        if (item.gap.where === "lost") lost = item.gap;
        continue;
      }
      for (const line of item.entry.lines) {
        const at = parseCursor(line.cursor);
        if (
          before !== undefined &&
          at !== null &&
          compareToCursor(at.entryId, at.index, before) >= 0
        )
          break read;
        if (real === limit) {
          hasMore = true;
          break read;
        }
        // A lost-lines notice goes with the line after the hole: on this page only if it is.
        if (lost !== null) lines.push(gapLine(lost, previous, line));
        lost = null;
        lines.push(line);
        previous = line.cursor;
        real += 1;
      }
    }
    return { lines, hasMore };
  }
  read: for await (const item of reader.backward(before ?? null)) {
    if (item.kind === "gap") {
      // Newest first: the last line taken is the one after the hole.
      const next = lines.at(-1);
      if (item.gap.where === "lost" && next !== undefined) lines.push(gapLine(item.gap, "", next));
      continue;
    }
    for (let i = item.entry.lines.length - 1; i >= 0; i--) {
      const line = item.entry.lines[i];
      if (line === undefined) continue;
      if (real === limit) {
        hasMore = true;
        break read;
      }
      lines.push(line);
      real += 1;
    }
  }
  lines.reverse();
  // A gap line's cursor is the line's before it; only now, in order, is that known.
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i];
    if (line?.gap !== undefined) lines[i] = { ...line, cursor: lines[i - 1]?.cursor ?? "0-0:0" };
  }
  return { lines, hasMore };
}

/** One line of the plain-text download. */
export function formatTextLine(line: LogLine): string {
  return `${line.ts} ${line.source.padEnd(6)} ${line.text}\n`;
}

// Bytes of text gathered before a chunk is handed to the response.
const TEXT_CHUNK_BYTES = 64 * 1024;

/**
 * The whole log as plain text, streamed as it is read: from Redis where it holds the lines, else
 * from the archive a block at a time. Memory stays one read whatever the size of the log.
 */
export function streamLogText(reader: LogReader): ReadableStream<Uint8Array> {
  const encoder = new TextEncoder();
  const items = reader.forward(null);
  let previous = "0-0:0";
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      let text = "";
      while (text.length < TEXT_CHUNK_BYTES) {
        const next = await items.next();
        if (next.done) {
          if (text !== "") controller.enqueue(encoder.encode(text));
          controller.close();
          return;
        }
        const item = next.value;
        if (item.kind === "gap") {
          if (item.gap.where === "lost")
            text += formatTextLine(
              gapLine(item.gap, previous, { ts: new Date().toISOString(), phase: "build" }),
            );
          continue;
        }
        for (const line of item.entry.lines) text += formatTextLine(line);
        previous = item.entry.lines.at(-1)?.cursor ?? previous;
      }
      controller.enqueue(encoder.encode(text));
    },
    async cancel() {
      await items.return(undefined);
    },
  });
}
