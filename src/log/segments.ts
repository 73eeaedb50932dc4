import { z } from "zod";
import {
  ENTRY_ID_PATTERN,
  isLogRecord,
  type LogLine,
  nextLineAfter,
  parseCursor,
  recordOf,
  type StreamEntry,
} from "../shared/entry.ts";
import { TERMINAL_STATUSES, type TerminalStatus } from "../shared/job.ts";
import { isValidJobId } from "../shared/keys.ts";

/**
 * The archive's format. A job's log is a series of immutable segments, each written once it is
 * complete, plus one small index. A segment is gzip NDJSON: one `LogLine` (with the cursor
 * viewers saw) per line, and after the terminal entry's lines `{"end": status, "id": entry}`.
 * It is made of gzip members ("blocks") of whole entries, concatenated: `zcat` reads a segment
 * as one file, and a reader fetches a single block by byte range, so a history page costs one
 * small ranged read whatever the size of the log.
 */

export const DEFAULT_SEGMENT_LIMITS = {
  /** A segment is complete past this many lines or raw bytes (NDJSON before gzip). */
  segmentLines: 10_000,
  segmentBytes: 4 * 1024 * 1024,
  /** A block (gzip member, the unit of a ranged read) past this many lines or raw bytes. */
  blockLines: 1_000,
  blockBytes: 128 * 1024,
} as const;
export type SegmentLimits = { readonly [K in keyof typeof DEFAULT_SEGMENT_LIMITS]: number };

function checkedJobId(jobId: string): string {
  if (!isValidJobId(jobId)) throw new TypeError("invalid job id");
  return jobId;
}

/** The archive's index for a job. */
export function indexKey(jobId: string): string {
  return `build-logs/${checkedJobId(jobId)}/index.json`;
}

export function segmentKey(jobId: string, seq: number): string {
  return `build-logs/${checkedJobId(jobId)}/segments/${String(seq).padStart(6, "0")}.ndjson.gz`;
}

/** The whole-object archive written before segments; still read for jobs archived back then. */
export function legacyArchiveKey(jobId: string): string {
  return `build-logs/${checkedJobId(jobId)}/log.ndjson.gz`;
}

const entryId = z.string().regex(ENTRY_ID_PATTERN);

const blockSchema = z.object({
  /** First and last entry ids in the block. */
  from: entryId,
  to: entryId,
  /** The line number of its first line. */
  n: z.number().int().nonnegative(),
  lines: z.number().int().nonnegative(),
  offset: z.number().int().nonnegative(),
  length: z.number().int().positive(),
});
export type ArchiveBlock = z.infer<typeof blockSchema>;

const segmentSchema = z.object({
  key: z.string(),
  from: entryId,
  to: entryId,
  n: z.number().int().nonnegative(),
  lines: z.number().int().nonnegative(),
  bytes: z.number().int().positive(),
  blocks: z.array(blockSchema).min(1),
});
export type ArchiveSegment = z.infer<typeof segmentSchema>;

export const archiveIndexSchema = z.object({
  v: z.literal(1),
  /** The last entry archived; the next segment starts after it. */
  through: entryId.nullable(),
  /** Lines archived, and the line number after the last of them (larger if lines were lost). */
  lines: z.number().int().nonnegative(),
  nextLine: z.number().int().nonnegative(),
  /** Set with the last segment: the archive is complete. */
  end: z.enum(TERMINAL_STATUSES).nullable(),
  segments: z.array(segmentSchema),
});
export type ArchiveIndex = z.infer<typeof archiveIndexSchema>;

export function emptyIndex(): ArchiveIndex {
  return { v: 1, through: null, lines: 0, nextLine: 0, end: null, segments: [] };
}

export async function gzip(text: string): Promise<Uint8Array> {
  const stream = new Blob([text]).stream().pipeThrough(new CompressionStream("gzip"));
  // R2 and S3 want the length up front: the compressed bytes are buffered (one block at a time).
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

export async function gunzip(bytes: Uint8Array): Promise<string> {
  const stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream("gzip"));
  return new Response(stream).text();
}

/** The raw NDJSON of one entry: its lines, then the end marker on the terminal entry. */
export function entryNdjson(entry: StreamEntry): string {
  let text = "";
  for (const line of entry.lines) text += `${JSON.stringify(line)}\n`;
  if (entry.end !== undefined) text += `${JSON.stringify({ end: entry.end, id: entry.id })}\n`;
  return text;
}

/**
 * Encodes complete entries as one segment: blocks cut at entry boundaries by the limits, and
 * where the line numbers jump (lines lost before they were archived), so that every block's
 * lines are consecutive and a reader sees the hole between two blocks.
 */
export async function encodeSegment(
  entries: readonly StreamEntry[],
  firstLine: number,
  limits: SegmentLimits,
): Promise<{ body: Uint8Array; blocks: ArchiveBlock[]; nextLine: number }> {
  const parts: Uint8Array[] = [];
  const blocks: ArchiveBlock[] = [];
  let offset = 0;
  let nextLine = firstLine;
  let group: StreamEntry[] = [];
  let groupText = "";
  let groupLines = 0;
  let groupStart = firstLine;
  const flush = async () => {
    const first = group[0];
    const last = group.at(-1);
    if (first === undefined || last === undefined) return;
    const bytes = await gzip(groupText);
    parts.push(bytes);
    blocks.push({
      from: first.id,
      to: last.id,
      n: groupStart,
      lines: groupLines,
      offset,
      length: bytes.byteLength,
    });
    offset += bytes.byteLength;
    group = [];
    groupText = "";
    groupLines = 0;
  };
  for (const entry of entries) {
    const at = entry.firstLine ?? nextLine;
    if (
      group.length > 0 &&
      (at !== nextLine || groupLines >= limits.blockLines || groupText.length >= limits.blockBytes)
    )
      await flush();
    if (group.length === 0) groupStart = at;
    group.push(entry);
    groupText += entryNdjson(entry);
    groupLines += entry.lines.length;
    nextLine = nextLineAfter(entry) ?? at + entry.lines.length;
  }
  await flush();
  const body = new Uint8Array(offset);
  let at = 0;
  for (const part of parts) {
    body.set(part, at);
    at += part.byteLength;
  }
  return { body, blocks, nextLine };
}

const endMarkerSchema = z.object({ end: z.enum(TERMINAL_STATUSES), id: entryId.optional() });

function archivedLine(value: unknown): LogLine | null {
  if (!isLogRecord(value)) return null;
  const cursor: unknown = (value as { cursor?: unknown }).cursor;
  if (typeof cursor !== "string") return null;
  return { ...recordOf(value), cursor };
}

/**
 * The entries of one block (or of a legacy whole-object archive), regrouped by their cursors'
 * entry ids: the same entries, ids and cursors that were live. `firstLine` numbers them.
 */
export function decodeBlock(text: string, firstLine: number): StreamEntry[] {
  const entries: StreamEntry[] = [];
  let id = "";
  let lines: LogLine[] = [];
  let n = firstLine;
  let entryStart = firstLine;
  const close = (end?: TerminalStatus) => {
    if (id === "" && end === undefined) return;
    entries.push({
      id,
      lines,
      firstLine: entryStart,
      ...(end === undefined ? {} : { end }),
    });
    id = "";
    lines = [];
    entryStart = n;
  };
  for (const row of text.split("\n")) {
    if (row === "") continue;
    const value: unknown = JSON.parse(row);
    const end =
      typeof value === "object" && value !== null && "end" in value
        ? endMarkerSchema.safeParse(value)
        : null;
    if (end?.success) {
      if (end.data.id !== undefined && end.data.id !== id) {
        close();
        id = end.data.id;
      }
      close(end.data.end);
      continue;
    }
    const line = archivedLine(value);
    if (line === null) throw new Error(`archived line ${row.slice(0, 80)} is not a log line`);
    const cursor = parseCursor(line.cursor);
    if (cursor === null) throw new Error(`archived line with a malformed cursor ${line.cursor}`);
    if (cursor.entryId !== id) {
      close();
      id = cursor.entryId;
    }
    lines.push({ ...line, n });
    n += 1;
  }
  close();
  return entries;
}
