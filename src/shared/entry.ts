import { z } from "zod";
import { TERMINAL_STATUSES, type TerminalStatus } from "./job.ts";
import { isStepMark, MAX_STEPS, STEP_STATUSES, type StepMark, stepMarkOf } from "./steps.ts";
import { isStyleSpanList, type StyleSpan } from "./style-spans.ts";

/**
 * The log's wire format, shared by the runner (the only writer) and the Worker (the readers).
 *
 * One Redis Stream entry holds a batch of lines, so that a burst of 1,000 lines costs a
 * handful of Upstash commands instead of 1,000 (Upstash bills every command, also inside a
 * pipeline). Fields:
 *   v      the format version: "1"; "2" when a line of the entry carries style spans
 *          (src/shared/style-spans.ts); "3" when a line carries a step mark (src/shared/
 *          steps.ts), spans or not. Readers take all three; a writer writes the lowest that
 *          holds the entry, so entries older readers know stay byte for byte the same (deploy
 *          the Worker before a runner that writes a newer version).
 *   lines  JSON array of LogRecord, oldest first
 *   n      optional: the log's line number (0-based) of the entry's first line. Entries follow
 *          each other without a hole when each `n` is the previous `n` plus its line count;
 *          a reader that finds a larger `n` knows exactly how many lines it did not get (they
 *          were trimmed from the live copy after being archived, or lost with Redis).
 * A job's last entry is its terminal entry, `v=1 end=<ready|failed>` (it may also hold lines):
 * a reader sees the end in the same read as the last lines.
 * The cursor of a line is `<entry id>:<index in the entry>`; it is the SSE `id:`, the
 * `Last-Event-ID` to resume from and the history page boundary. Nothing is located by time.
 *
 * Values are JSON text, read with `automaticDeserialization: false`: the Upstash client would
 * otherwise JSON.parse every value it reads back (a line "42" would become the number 42).
 */
export const ENTRY_FORMAT_VERSION = "1";
/** Lines may carry `spans`. */
export const STYLED_ENTRY_FORMAT_VERSION = "2";
/** Lines may carry `step` (and `spans`). */
export const STEP_ENTRY_FORMAT_VERSION = "3";
const READABLE_VERSIONS: ReadonlySet<string> = new Set([
  ENTRY_FORMAT_VERSION,
  STYLED_ENTRY_FORMAT_VERSION,
  STEP_ENTRY_FORMAT_VERSION,
]);

export const LOG_SOURCES = ["stdout", "stderr", "system"] as const;
export type LogSource = (typeof LOG_SOURCES)[number];

/** A phase names the build step a line belongs to: `install`, `build`, `dev_server`, ... */
export const PHASE_PATTERN = /^[a-z][a-z0-9_-]{0,31}$/;

const stepIndex = z
  .number()
  .int()
  .min(0)
  .max(MAX_STEPS - 1);

export const logRecordSchema = z.object({
  /** UTC ISO-8601 with milliseconds, e.g. 2026-11-21T12:00:00.000Z */
  ts: z.string().regex(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/),
  source: z.enum(LOG_SOURCES),
  phase: z.string().regex(PHASE_PATTERN),
  text: z.string(),
  /** v2: the line's colours and links over `text`; absent on a plain line. */
  spans: z
    .array(z.object({ s: z.number(), e: z.number(), c: z.string(), h: z.string().optional() }))
    .optional(),
  /** v3: on a system line, where a step of the job starts or ends. */
  step: z
    .union([
      z.object({
        i: stepIndex,
        name: z.string().max(200),
        event: z.literal("start"),
      }),
      z.object({
        i: stepIndex,
        name: z.string().max(200),
        event: z.literal("end"),
        status: z.enum(STEP_STATUSES),
        exit: z.number().int().nullable(),
        ms: z.number().int().min(0),
      }),
    ])
    .optional(),
});
export type LogRecord = Omit<z.infer<typeof logRecordSchema>, "spans" | "step"> & {
  readonly spans?: readonly StyleSpan[];
  readonly step?: StepMark;
};

/** A line as readers see it: the record and its cursor. */
export interface LogLine extends LogRecord {
  readonly cursor: string;
  /** The line's number in the log (0-based), when its entry carries `n`. */
  readonly n?: number;
  /**
   * Only on a system line a reader adds where lines are not in the range it read from: how many
   * (null when unknown) and where they are (`archive`: served right after; `lost`: nowhere).
   * Its cursor is the last line's before the hole, so a resume from it misses nothing.
   */
  readonly gap?: { readonly lines: number | null; readonly where: "archive" | "lost" };
}

const entryLinesSchema = z.array(logRecordSchema).min(1);

const TS_PATTERN = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;
const SOURCES: ReadonlySet<string> = new Set(LOG_SOURCES);

/**
 * The same check as `logRecordSchema`, by hand: readers validate every line they read (a page
 * of a history walk reads a thousand), and zod took about 20 µs a line where this takes well
 * under one. zod still runs on a failure, for its message.
 */
export function isLogRecord(value: unknown): value is LogRecord {
  if (typeof value !== "object" || value === null) return false;
  const record = value as Record<string, unknown>;
  return (
    typeof record.ts === "string" &&
    TS_PATTERN.test(record.ts) &&
    typeof record.source === "string" &&
    SOURCES.has(record.source) &&
    typeof record.phase === "string" &&
    PHASE_PATTERN.test(record.phase) &&
    typeof record.text === "string" &&
    (record.spans === undefined || isStyleSpanList(record.spans, record.text.length)) &&
    (record.step === undefined || (record.source === "system" && isStepMark(record.step)))
  );
}

/** The record's fields, nothing else: what readers pass on (spans only when present). */
export function recordOf(record: LogRecord): LogRecord {
  const { ts, source, phase, text, spans, step } = record;
  const marked = step === undefined ? {} : { step: stepMarkOf(step) };
  if (spans === undefined) return { ts, source, phase, text, ...marked };
  // Rebuilt key by key: a span passes on its range, style and link, nothing a writer added.
  const clean = spans.map(({ s, e, c, h }) => (h === undefined ? { s, e, c } : { s, e, c, h }));
  return { ts, source, phase, text, spans: clean, ...marked };
}

/** The lowest entry format version that holds `records`. */
function versionOf(records: readonly LogRecord[]): string {
  let version = ENTRY_FORMAT_VERSION;
  for (const record of records) {
    if (record.step !== undefined) return STEP_ENTRY_FORMAT_VERSION;
    if (record.spans !== undefined) version = STYLED_ENTRY_FORMAT_VERSION;
  }
  return version;
}

/** A stream entry id, `<ms>-<seq>`, as Redis writes it. */
export const ENTRY_ID_PATTERN = /^\d{1,15}-\d{1,15}$/;
/** A line cursor, `<entry id>:<index>`. */
export const CURSOR_PATTERN = /^(\d{1,15}-\d{1,15}):(\d{1,5})$/;

export interface Cursor {
  readonly entryId: string;
  readonly index: number;
}

export function formatCursor(entryId: string, index: number): string {
  return `${entryId}:${index}`;
}

/** Parses a line cursor; null when it is not one (callers answer 400). */
export function parseCursor(value: string): Cursor | null {
  const match = CURSOR_PATTERN.exec(value);
  if (!match?.[1] || match[2] === undefined) return null;
  return { entryId: match[1], index: Number(match[2]) };
}

/** Orders two decimal digit strings by value, leading zeros ignored. */
function compareDecimal(a: string, b: string): number {
  const x = a.replace(/^0+(?=\d)/, "");
  const y = b.replace(/^0+(?=\d)/, "");
  if (x.length !== y.length) return x.length < y.length ? -1 : 1;
  return x < y ? -1 : x > y ? 1 : 0;
}

/**
 * Orders two entry ids numerically (`9-0` < `10-0`, which a plain string comparison gets
 * wrong). On digit strings, not BigInt: this runs per viewer per poll and per entry of a resume.
 */
export function compareEntryIds(a: string, b: string): number {
  const i = a.indexOf("-");
  const j = b.indexOf("-");
  const ms = compareDecimal(i < 0 ? a : a.slice(0, i), j < 0 ? b : b.slice(0, j));
  return ms !== 0 ? ms : compareDecimal(i < 0 ? "0" : a.slice(i + 1), j < 0 ? "0" : b.slice(j + 1));
}

/** Orders the line at (`entryId`, `index`) against a cursor: negative before it, positive after. */
export function compareToCursor(entryId: string, index: number, cursor: Cursor): number {
  return compareEntryIds(entryId, cursor.entryId) || index - cursor.index;
}

/** The stream fields of one entry holding `records`; `firstLine` is its `n` when known. */
export function encodeEntryFields(
  records: readonly LogRecord[],
  firstLine?: number,
): Record<string, string> {
  const fields: Record<string, string> = {
    v: versionOf(records),
    lines: JSON.stringify(records),
  };
  if (firstLine !== undefined) fields.n = String(firstLine);
  return fields;
}

/** The fields of a job's terminal entry, with its last lines if any. */
export function encodeEndFields(
  status: TerminalStatus,
  records: readonly LogRecord[] = [],
  firstLine?: number,
): Record<string, string> {
  if (records.length > 0) return { ...encodeEntryFields(records, firstLine), end: status };
  const fields: Record<string, string> = { v: ENTRY_FORMAT_VERSION, end: status };
  if (firstLine !== undefined) fields.n = String(firstLine);
  return fields;
}

const endSchema = z.enum(TERMINAL_STATUSES);

/** One raw stream entry as XRANGE returns it without deserialization: [id, [field, value, ...]]. */
const rawEntrySchema = z.tuple([z.string().regex(ENTRY_ID_PATTERN), z.array(z.string())]);
const rawEntriesSchema = z.array(rawEntrySchema);

export interface StreamEntry {
  readonly id: string;
  readonly lines: readonly LogLine[];
  /** Set on the job's terminal entry: how the job ended. */
  readonly end?: TerminalStatus;
  /** The line number of its first line (the `n` field), when the writer gave one. */
  readonly firstLine?: number;
}

/** The line number right after `entry`, or undefined when the entry carries no `n`. */
export function nextLineAfter(entry: StreamEntry): number | undefined {
  return entry.firstLine === undefined ? undefined : entry.firstLine + entry.lines.length;
}

export class EntryFormatError extends Error {
  override readonly name = "EntryFormatError";
  readonly code = "bad_entry";
}

function fieldsToRecord(fields: readonly string[]): Record<string, string> {
  const record: Record<string, string> = {};
  for (let i = 0; i + 1 < fields.length; i += 2) {
    const name = fields[i];
    const value = fields[i + 1];
    if (name !== undefined && value !== undefined) record[name] = value;
  }
  return record;
}

/** Decodes one entry's fields into lines with their cursors. */
export function decodeEntry(id: string, fields: Record<string, string>): StreamEntry {
  if (
    fields.v === undefined ||
    !READABLE_VERSIONS.has(fields.v) ||
    (fields.lines === undefined && fields.end === undefined)
  ) {
    throw new EntryFormatError(`stream entry ${id} is not a v1, v2 or v3 log entry`);
  }
  let end: TerminalStatus | undefined;
  let firstLine: number | undefined;
  if (fields.n !== undefined) {
    if (!/^\d{1,15}$/.test(fields.n))
      throw new EntryFormatError(`stream entry ${id} has a malformed line number`);
    firstLine = Number(fields.n);
  }
  if (fields.end !== undefined) {
    const status = endSchema.safeParse(fields.end);
    if (!status.success)
      throw new EntryFormatError(`stream entry ${id} ends with an unknown status`);
    end = status.data;
  }
  const extra = {
    ...(end === undefined ? {} : { end }),
    ...(firstLine === undefined ? {} : { firstLine }),
  };
  if (fields.lines === undefined) return { id, lines: [], ...extra };
  let parsed: unknown;
  try {
    parsed = JSON.parse(fields.lines);
  } catch (cause) {
    throw new EntryFormatError(`stream entry ${id} has lines that are not JSON`, { cause });
  }
  if (!Array.isArray(parsed) || parsed.length === 0 || !parsed.every(isLogRecord)) {
    const result = entryLinesSchema.safeParse(parsed);
    throw new EntryFormatError(`stream entry ${id} has malformed lines`, { cause: result.error });
  }
  const records: LogRecord[] = parsed;
  const lines = records.map((record, index) => ({
    ...recordOf(record),
    cursor: formatCursor(id, index),
    ...(firstLine === undefined ? {} : { n: firstLine + index }),
  }));
  return { id, lines, ...extra };
}

/** Decodes the raw reply of XRANGE / XREVRANGE (read with automaticDeserialization: false). */
export function decodeStreamReply(reply: unknown): StreamEntry[] {
  const result = rawEntriesSchema.safeParse(reply);
  if (!result.success) {
    throw new EntryFormatError("the stream reply is not a list of entries", {
      cause: result.error,
    });
  }
  return result.data.map(([id, fields]) => decodeEntry(id, fieldsToRecord(fields)));
}
