import type { Context } from "hono";
import { Hono } from "hono";
import { describeRoute } from "hono-openapi";
import { workerConfig } from "../config.ts";
import { cancelJob } from "../jobs/cancel.ts";
import { readArchivedRecord } from "../jobs/expiry.ts";
import { indexJob, indexMember, listJobs, ownerJobsKey } from "../jobs/listing.ts";
import { countJobCreation } from "../jobs/quotas.ts";
import { archiveStoreFromEnv } from "../log/archive-store.ts";
import { readHistory, streamLogText } from "../log/history.ts";
import { LogReader } from "../log/reader.ts";
import { searchLog } from "../log/search.ts";
import { createRedis } from "../redis.ts";
import { ApiError } from "../shared/errors.ts";
import { type JobRecord, parseJobRecord } from "../shared/job.ts";
import { jobSecretsKey } from "../shared/job-secrets.ts";
import { jobSpecSchema, sealRunRequest } from "../shared/job-spec.ts";
import { bodyAtMost, jsonBody } from "../shared/json-body.ts";
import { jobKey, QUEUED_JOBS_KEY } from "../shared/keys.ts";
import {
  createdJobSchema,
  historyPageSchema,
  jobListSchema,
  jobSchema,
  searchPageSchema,
  streamTicketSchema,
} from "./api-schemas.ts";
import { type AuthVariables, clerkAuthFromEnv } from "./auth.ts";
import {
  documented,
  errorResponses,
  jsonResponse,
  OWNED_JOB_ERRORS,
  SESSION_ERRORS,
  SESSION_POST_ERRORS,
  SESSION_SECURITY,
} from "./openapi.ts";
import { streamTicketsFromEnv } from "./stream-ticket.ts";
import { historyQuery, jobIdParam, jobListQuery, searchQuery } from "./validate.ts";

export type JobsEnv = { Bindings: Env; Variables: AuthVariables };

// A valid spec holds at most 96 KiB of files plus steps and env; the body is refused past this
// before it is parsed.
const MAX_JOB_REQUEST_BYTES = 512 * 1024;
// Cloudflare Queues take 128 KB per message; what we send is counted as its JSON bytes, and 1 KB
// is left for the Queue's own envelope.
const MAX_QUEUE_MESSAGE_BYTES = 127_000;

/**
 * The job, if the caller owns it. Anyone else gets the same 404 as for a job that does not
 * exist, so job ids cannot be probed.
 */
export async function ownedJob(c: Context<JobsEnv>, jobId: string): Promise<JobRecord> {
  const raw = await createRedis(c.env).get<string>(jobKey(jobId));
  // Redis's copy of an ended job's record expires (JOB_RECORD_TTL_SECONDS); the archive keeps
  // the last one, with its owner, so the owner still reads the job, its history and its log.
  const job =
    raw === null
      ? await readArchivedRecord(archiveStoreFromEnv(c.env), jobId)
      : parseJobRecord(raw);
  if (job === null || job.owner !== c.var.userId)
    throw new ApiError(404, "job_not_found", "no such job");
  return job;
}

function logReader(env: Env, jobId: string): LogReader {
  return new LogReader(createRedis(env), archiveStoreFromEnv(env), jobId);
}

function newJobId(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(12));
  return `job_${[...bytes].map((byte) => byte.toString(16).padStart(2, "0")).join("")}`;
}

const session = clerkAuthFromEnv();

/** Where a job's parts are, relative to the Worker's origin. */
export function jobLinks(jobId: string) {
  return {
    self: `/api/jobs/${jobId}`,
    logs: `/api/jobs/${jobId}/logs`,
    stream: `/api/jobs/${jobId}/logs/stream`,
    text: `/api/jobs/${jobId}/logs.txt`,
    ticket: `/api/jobs/${jobId}/logs/ticket`,
    /** The log viewer page, for a person. */
    viewer: `/jobs/${jobId}`,
  };
}

/**
 * The jobs API. Each route names its own auth: the live stream (src/http/stream.ts, which also
 * takes a ticket) is mounted beside this sub-app, and a `.use()` here would reach it too.
 */
export const jobs = new Hono<JobsEnv>()
  .post(
    "/",
    describeRoute({
      summary: "Create a job",
      description:
        "Queues the job for a runner. `env` and `secrets` travel sealed and are never stored; " +
        "secrets are masked wherever they appear in the log.",
      tags: ["jobs"],
      security: SESSION_SECURITY,
      responses: {
        201: {
          ...jsonResponse("the job, queued, with where its parts are", createdJobSchema),
          headers: { Location: { schema: { type: "string" }, description: "the job's URL" } },
        },
        ...errorResponses({
          ...SESSION_POST_ERRORS,
          400: ["invalid_json", "invalid_job"],
          413: ["too_large"],
          429: ["rate_limited"],
          503: [...SESSION_ERRORS[503], "queue_unavailable"],
        }),
      },
    }),
    session,
    bodyAtMost(MAX_JOB_REQUEST_BYTES, "a job request"),
    documented("json", jobSpecSchema, jsonBody(jobSpecSchema, "invalid_job")),
    async (c) => {
      const jobId = newJobId();
      const owner = c.var.userId;
      const config = workerConfig(c.env);
      if (config.jobSecretsKey === null)
        throw new Error(
          "JOB_SECRETS_KEY is not set (openssl rand -base64 32): jobs cannot be sealed",
        );
      const key = await jobSecretsKey(config.jobSecretsKey);
      const spec = c.req.valid("json");
      const message = await sealRunRequest(key, { job_id: jobId, owner, spec });
      // Checked before anything is written: a message the Queue refuses would leave a record
      // `queued` that no runner ever hears of.
      const messageBytes = new TextEncoder().encode(JSON.stringify(message)).byteLength;
      if (messageBytes > MAX_QUEUE_MESSAGE_BYTES) {
        throw new ApiError(
          413,
          "too_large",
          `this job is ${messageBytes} bytes once sealed for the queue, over its ${MAX_QUEUE_MESSAGE_BYTES}; send fewer or smaller files`,
        );
      }
      const redis = createRedis(c.env);
      const verdict = await countJobCreation(redis, owner, config.creationRateLimit);
      if (!verdict.allowed) {
        c.header("Retry-After", String(verdict.retryAfterSeconds));
        throw new ApiError(
          429,
          "rate_limited",
          `too many jobs created in the last minute; retry in ${verdict.retryAfterSeconds} s`,
        );
      }
      const createdMs = Date.now();
      const job: JobRecord = {
        id: jobId,
        owner,
        status: "queued",
        title: spec.title ?? spec.steps[0]?.name ?? jobId,
        created_at: new Date(createdMs).toISOString(),
        started_at: null,
        finished_at: null,
      };
      // The record holds no env or secret: those travel sealed, in the queue message only.
      // In the queued set until a runner claims it: the sweep fails a job left there too long.
      // The owner's index (GET /api/jobs) is written in the same request.
      const write = redis.pipeline();
      write.set(jobKey(jobId), JSON.stringify(job));
      write.zadd(QUEUED_JOBS_KEY, { score: createdMs, member: jobId });
      indexJob(write, owner, createdMs, jobId);
      await write.exec();
      try {
        await c.env.JOB_QUEUE.send(message, { contentType: "json" });
      } catch (error) {
        // No job without a message: the caller is told it was not created, and can retry.
        const undo = redis.pipeline();
        undo.del(jobKey(jobId));
        undo.zrem(QUEUED_JOBS_KEY, jobId);
        undo.zrem(ownerJobsKey(owner), indexMember(createdMs, jobId));
        await undo.exec();
        throw new ApiError(503, "queue_unavailable", "the job queue is unavailable; retry", {
          cause: error,
        });
      }
      c.header("Location", `/api/jobs/${jobId}`);
      return c.json({ ...job, links: jobLinks(jobId) }, 201);
    },
  )
  // The caller's jobs, newest first: one EVAL per page over the owner's index.
  .get(
    "/",
    describeRoute({
      summary: "List the caller's jobs",
      description: "Newest first, cursor-paged, optionally by status.",
      tags: ["jobs"],
      security: SESSION_SECURITY,
      responses: {
        200: jsonResponse("a page of the caller's jobs", jobListSchema),
        ...errorResponses({
          ...SESSION_ERRORS,
          400: ["invalid_status", "invalid_cursor", "invalid_limit"],
        }),
      },
    }),
    session,
    jobListQuery,
    async (c) => {
      const { status, cursor, limit } = c.req.valid("query");
      const redis = createRedis(c.env);
      const page = await listJobs(redis, archiveStoreFromEnv(c.env), {
        owner: c.var.userId,
        limit,
        ...(status === undefined ? {} : { status }),
        ...(cursor === undefined ? {} : { cursor }),
      });
      // Jobs that are nowhere any more leave the index after the answer.
      if (page.stale.length > 0)
        c.executionCtx.waitUntil(
          redis.zrem(ownerJobsKey(c.var.userId), ...(page.stale as [string, ...string[]])).then(
            () => undefined,
            () => undefined,
          ),
        );
      return c.json({ jobs: page.jobs, next_cursor: page.nextCursor });
    },
  )
  .get(
    "/:id",
    describeRoute({
      summary: "A job's status",
      tags: ["jobs"],
      security: SESSION_SECURITY,
      responses: {
        200: jsonResponse("the job", jobSchema),
        ...errorResponses(OWNED_JOB_ERRORS),
      },
    }),
    session,
    jobIdParam,
    async (c) => c.json(await ownedJob(c, c.req.valid("param").id)),
  )
  .get(
    "/:id/logs",
    describeRoute({
      summary: "A page of a job's log",
      description:
        "One direction at a time: `after` (older to newer) or `before` (newer to older), or " +
        "`line` for the page from that line on (a permalink). Lines come oldest first.",
      tags: ["logs"],
      security: SESSION_SECURITY,
      responses: {
        200: jsonResponse("the page", historyPageSchema),
        ...errorResponses({
          ...OWNED_JOB_ERRORS,
          400: ["invalid_job_id", "invalid_cursor", "invalid_limit", "invalid_line"],
          404: ["job_not_found", "line_not_found"],
        }),
      },
    }),
    session,
    jobIdParam,
    historyQuery,
    async (c) => {
      const jobId = c.req.valid("param").id;
      const { before, line, limit } = c.req.valid("query");
      let { after } = c.req.valid("query");
      if (line !== undefined && (before !== undefined || after !== undefined))
        throw new ApiError(400, "invalid_line", "line cannot be combined with before or after");
      await ownedJob(c, jobId);
      const reader = logReader(c.env, jobId);
      if (line !== undefined) {
        // A page from line `line` on (a permalink, a search hit), wherever it is kept.
        const at = await reader.locate(line);
        if (at === null) throw new ApiError(404, "line_not_found", `the log has no line ${line}`);
        after = { entryId: at.entryId, index: at.index - 1 };
      }
      const query = { ...(before ? { before } : {}), ...(after ? { after } : {}), limit };
      // Redis where it holds the range, else the archive (lines that left the live copy, or the
      // whole log once Redis's 24 hours are over): the same page either way.
      const page = await readHistory(reader, query);
      // Page boundaries are real lines: a gap line shares its cursor with the line before it.
      const real = page.lines.filter((line) => line.gap === undefined);
      return c.json({
        lines: page.lines,
        has_more: page.hasMore,
        cursors: {
          before: real[0]?.cursor ?? c.req.query("before") ?? null,
          after: real.at(-1)?.cursor ?? c.req.query("after") ?? null,
        },
      });
    },
  )
  // Search over the whole log, not only what a viewer has loaded: Redis where it holds the
  // lines, else the archive. Paged by cursor and bounded per request (SEARCH_SCAN_LINES).
  .get(
    "/:id/logs/search",
    describeRoute({
      summary: "Search a job's whole log",
      description:
        "Case-insensitive text (`q`) and/or error lines (`kind=error`), oldest first; at most " +
        "200,000 lines are read per request, and `next` says where to go on.",
      tags: ["logs"],
      security: SESSION_SECURITY,
      responses: {
        200: jsonResponse("matching lines", searchPageSchema),
        ...errorResponses({
          ...OWNED_JOB_ERRORS,
          400: [
            "invalid_job_id",
            "invalid_query",
            "invalid_kind",
            "invalid_limit",
            "invalid_cursor",
          ],
        }),
      },
    }),
    session,
    jobIdParam,
    searchQuery,
    async (c) => {
      const jobId = c.req.valid("param").id;
      const { q, kind, after, limit } = c.req.valid("query");
      if (q === undefined && kind === undefined)
        throw new ApiError(400, "invalid_query", "pass q (the text to find) or kind=error");
      await ownedJob(c, jobId);
      const reader = logReader(c.env, jobId);
      const page = await searchLog(reader, {
        text: q ?? null,
        kind: kind ?? null,
        after: after ?? null,
        limit,
      });
      return c.json({
        matches: page.matches,
        next: page.next,
        scanned_lines: page.scanned,
        redis_commands: reader.redisCommands,
      });
    },
  )
  .get(
    "/:id/logs.txt",
    describeRoute({
      summary: "A job's whole log as plain text",
      tags: ["logs"],
      security: SESSION_SECURITY,
      responses: {
        200: {
          description: "the log, streamed",
          content: { "text/plain": { schema: { type: "string" } } },
        },
        ...errorResponses(OWNED_JOB_ERRORS),
      },
    }),
    session,
    jobIdParam,
    async (c) => {
      const jobId = c.req.valid("param").id;
      await ownedJob(c, jobId);
      const body = streamLogText(logReader(c.env, jobId));
      return new Response(body, {
        headers: {
          "Content-Type": "text/plain; charset=utf-8",
          "Content-Disposition": `attachment; filename="${jobId}.log"`,
          "X-Content-Type-Options": "nosniff",
        },
      });
    },
  )
  // 200 with the ended record for a queued job (it never starts); 202 with the record for a
  // running one (its log ends with who cancelled it, and viewers get done "cancelled").
  .post(
    "/:id/cancel",
    describeRoute({
      summary: "Cancel a job",
      tags: ["jobs"],
      security: SESSION_SECURITY,
      responses: {
        200: jsonResponse("the job was queued: it ended cancelled and never starts", jobSchema),
        202: jsonResponse("the job was running: its runner stops it", jobSchema),
        ...errorResponses({ ...OWNED_JOB_ERRORS, ...SESSION_POST_ERRORS, 409: ["job_ended"] }),
      },
    }),
    session,
    jobIdParam,
    async (c) => {
      const job = await ownedJob(c, c.req.valid("param").id);
      const result = await cancelJob(c.env, job, c.var.userId);
      return c.json(result.job, result.kind === "cancelled" ? 200 : 202);
    },
  )
  // A short-lived ticket for this job's stream, for an EventSource on another origin.
  .post(
    "/:id/logs/ticket",
    describeRoute({
      summary: "A ticket for the job's stream",
      description: "Pass it as `?ticket=` on the stream's URL: an EventSource from another origin.",
      tags: ["logs"],
      security: SESSION_SECURITY,
      responses: {
        200: jsonResponse("the ticket", streamTicketSchema),
        ...errorResponses({ ...OWNED_JOB_ERRORS, ...SESSION_POST_ERRORS }),
      },
    }),
    session,
    jobIdParam,
    async (c) => {
      const jobId = c.req.valid("param").id;
      await ownedJob(c, jobId);
      const { ticket, expiresAt } = await streamTicketsFromEnv(c.env).issue(jobId, c.var.userId);
      c.header("Cache-Control", "no-store");
      return c.json({ ticket, expires_at: expiresAt.toISOString() });
    },
  );
