import { z } from "zod";
import { logRecordSchema } from "../shared/entry.ts";
import { ERROR_CODES } from "../shared/errors.ts";
import { jobRecordSchema, TERMINAL_STATUSES } from "../shared/job.ts";

// What the public routes answer, as zod schemas for the OpenAPI document (src/http/openapi.ts).
// Each has an `id`, so the document names it once under components/schemas. The records are the
// ones the code stores and parses (jobRecordSchema, logRecordSchema); the rest is what the
// handlers put together around them. test/worker/openapi.test.ts holds real answers to these.

const cursor = z.string().describe("a log cursor: <entry id>:<index>, e.g. 1732190000000-0:3");

/** `{error: {code, message}}`; `code` is every ErrorCode (src/shared/errors.ts), from its list. */
export const errorBodySchema = z
  .object({
    error: z.object({
      code: z.enum(ERROR_CODES).describe("stable: branch on it"),
      message: z.string().describe("for people; its wording may change"),
    }),
  })
  .meta({ id: "Error" });

export const jobSchema = jobRecordSchema.meta({ id: "Job" });

export const jobLinksSchema = z
  .object({
    self: z.string(),
    logs: z.string(),
    stream: z.string(),
    text: z.string(),
    ticket: z.string(),
    viewer: z.string().describe("the build page, for a person"),
  })
  .meta({ id: "JobLinks", description: "where a job's parts are, relative to the Worker" });

export const createdJobSchema = jobRecordSchema
  .extend({ links: jobLinksSchema })
  .meta({ id: "CreatedJob" });

export const jobListSchema = z
  .object({
    jobs: z.array(jobSchema),
    next_cursor: z.string().nullable().describe("pass as ?cursor= for the next page; null: last"),
  })
  .meta({ id: "JobList" });

export const logLineSchema = logRecordSchema
  .extend({
    cursor,
    n: z.number().int().min(0).optional().describe("the line's number in the log, 0-based"),
    gap: z
      .object({ lines: z.number().int().nullable(), where: z.enum(["archive", "lost"]) })
      .optional()
      .describe("only on a system line marking lines not in the range read"),
  })
  .meta({ id: "LogLine" });

export const historyPageSchema = z
  .object({
    lines: z.array(logLineSchema).describe("oldest first, whichever way the page was read"),
    has_more: z.boolean(),
    cursors: z.object({ before: z.string().nullable(), after: z.string().nullable() }),
  })
  .meta({ id: "HistoryPage" });

export const searchPageSchema = z
  .object({
    matches: z.array(logLineSchema),
    next: z.string().nullable().describe("pass as ?after= to go on; null once the end was read"),
    scanned_lines: z.number().int().min(0),
    redis_commands: z.number().int().min(0),
  })
  .meta({ id: "SearchPage" });

export const streamTicketSchema = z
  .object({ ticket: z.string(), expires_at: z.iso.datetime() })
  .meta({ id: "StreamTicket" });

/**
 * One event of the live stream, its `data:` JSON-decoded. OpenAPI 3.1 has no schema for a
 * sequence of events, so the stream's content holds the schema of one of them; `: heartbeat`
 * comments come between them and carry no event.
 */
export const streamEventSchema = z
  .discriminatedUnion("event", [
    z
      .object({
        event: z.literal("log"),
        id: cursor.describe("the last line's cursor: resume with it as Last-Event-ID"),
        data: z.object({ lines: z.array(logLineSchema).min(1) }),
      })
      .meta({ id: "LogEvent" }),
    z
      .object({
        event: z.literal("done"),
        id: cursor.optional(),
        data: z.object({ status: z.enum(TERMINAL_STATUSES) }),
      })
      .meta({ id: "DoneEvent", description: "the job ended; the stream closes right after" }),
  ])
  .meta({ id: "StreamEvent" });
