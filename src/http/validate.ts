import { zValidator } from "@hono/zod-validator";
import type { ValidationTargets } from "hono/types";
import { z } from "zod";
import { DEFAULT_LIST_LIMIT, LIST_CURSOR_PATTERN, MAX_LIST_LIMIT } from "../jobs/listing.ts";
import { DEFAULT_PAGE_LIMIT, MAX_PAGE_LIMIT } from "../log/history.ts";
import { MAX_QUERY_LENGTH, MAX_SEARCH_RESULTS } from "../log/search.ts";
import { type Cursor, parseCursor } from "../shared/entry.ts";
import { ApiError, type ErrorCode } from "../shared/errors.ts";
import { JOB_STATUSES } from "../shared/job.ts";
import { describeIssues, type Issues } from "../shared/json-body.ts";
import { JOB_ID_PATTERN } from "../shared/keys.ts";
import { documented } from "./openapi.ts";

// Input is checked once, at the edge of each route, by @hono/zod-validator (Hono's validator()
// with zod, typed through to c.req.valid()); the hook turns a failure into the 400 ApiError
// with the stable code of the field that failed. Each is also described, by the same schema, in
// the OpenAPI document (documented(), src/http/openapi.ts).

/** A zValidator hook: the code is the failed field's (by its first path segment), else `code`. */
function rejectAs(code: ErrorCode, byField: Readonly<Record<string, ErrorCode>> = {}) {
  return (result: { success: true } | { success: false; error: Issues }): void => {
    if (result.success) return;
    const field = result.error.issues[0]?.path[0];
    throw new ApiError(
      400,
      (typeof field === "string" ? byField[field] : undefined) ?? code,
      describeIssues(result.error),
    );
  };
}

/** zValidator with our hook, its schema also in the OpenAPI document. */
function validator<T extends keyof ValidationTargets, S extends z.ZodType>(
  target: T,
  schema: S,
  hook: ReturnType<typeof rejectAs>,
) {
  return documented(target, schema, zValidator(target, schema, hook));
}

const jobId = z.string().regex(JOB_ID_PATTERN, "a job id is 1 to 64 letters, digits, '_' or '-'");

// "" is how a client says "no cursor" (an EventSource that has seen no id yet).
const cursor = z
  .string()
  .transform((value, context): Cursor | undefined => {
    if (value === "") return undefined;
    const parsed = parseCursor(value);
    if (parsed === null)
      context.addIssue({
        code: "custom",
        message: "not a log cursor (<entry id>:<index>, e.g. 1732190000000-0:3)",
      });
    return parsed ?? undefined;
  })
  .optional()
  .describe("a log cursor (<entry id>:<index>, e.g. 1732190000000-0:3); empty: none");

/**
 * `?limit=`: how many `things` a page holds, a whole number from 1 to `max`, `fallback` when
 * absent. Digits only (no sign, no exponent), and no more of them than `max` has.
 */
function pageLimit(things: string, max: number, fallback: number) {
  const message = `must be an integer from 1 to ${max}`;
  return z
    .string()
    .regex(new RegExp(`^\\d{1,${String(max).length}}$`), message)
    .transform(Number)
    .pipe(z.number().min(1, message).max(max, message))
    .default(fallback)
    .describe(`${things} per page, 1 to ${max} (${fallback})`);
}

/** `:id` is a job id. */
export const jobIdParam = validator("param", z.object({ id: jobId }), rejectAs("invalid_job_id"));

/** `?line=`: a line number, 0-based. */
const line = z
  .string()
  .regex(/^\d{1,9}$/, "must be a line number, 0 to 999999999")
  .transform(Number)
  .optional()
  .describe("the page from this line on (0-based), instead of before or after");

/** `?before=&after=&limit=` of a history page (one direction at a time), or `?line=&limit=` (a page from that line on). */
export const historyQuery = validator(
  "query",
  z
    .object({
      before: cursor,
      after: cursor,
      line,
      limit: pageLimit("lines", MAX_PAGE_LIMIT, DEFAULT_PAGE_LIMIT),
    })
    .refine((query) => query.before === undefined || query.after === undefined, {
      error:
        "cannot be used with after: a page is read one way (after: older to newer; before: newer to older)",
      path: ["before"],
    }),
  rejectAs("invalid_cursor", { limit: "invalid_limit", line: "invalid_line" }),
);

/** `?q=&kind=error&after=&limit=` of a search; q or kind is required (checked by the route). */
export const searchQuery = validator(
  "query",
  z.object({
    q: z
      .string()
      .max(MAX_QUERY_LENGTH, `must be at most ${MAX_QUERY_LENGTH} characters`)
      .transform((value) => (value === "" ? undefined : value))
      .optional()
      .describe("text to find, case-insensitive; q or kind is required"),
    kind: z
      .enum(["error"], { error: "must be error, or absent" })
      .optional()
      .describe("error: only error lines"),
    after: cursor,
    limit: pageLimit("matches", MAX_SEARCH_RESULTS, 50),
  }),
  rejectAs("invalid_query", {
    kind: "invalid_kind",
    after: "invalid_cursor",
    limit: "invalid_limit",
  }),
);

/** `?status=&cursor=&limit=` of GET /api/jobs. */
export const jobListQuery = validator(
  "query",
  z.object({
    status: z.enum(JOB_STATUSES, { error: `must be one of ${JOB_STATUSES.join(", ")}` }).optional(),
    cursor: z
      .string()
      .regex(LIST_CURSOR_PATTERN, "not a job list cursor (the next_cursor of a page)")
      .optional()
      .describe("the next_cursor of the previous page"),
    limit: pageLimit("jobs", MAX_LIST_LIMIT, DEFAULT_LIST_LIMIT),
  }),
  rejectAs("invalid_cursor", { limit: "invalid_limit", status: "invalid_status" }),
);

/** Where a live stream resumes: `Last-Event-ID` (EventSource's reconnects) over `?after=`. */
export const resumeHeader = validator(
  "header",
  z.object({ "Last-Event-ID": cursor }),
  rejectAs("invalid_cursor"),
);
export const streamQuery = validator(
  "query",
  z.object({
    after: cursor,
    ticket: z.string().optional().describe("a stream ticket, instead of a session"),
  }),
  rejectAs("invalid_cursor"),
);
