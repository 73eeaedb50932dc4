import { Hono } from "hono";
import { createMiddleware } from "hono/factory";
import { describeRoute, resolver } from "hono-openapi";
import { streamEventSchema } from "./api-schemas.ts";
import { clerkAuthFromEnv } from "./auth.ts";
import { type JobsEnv, ownedJob } from "./jobs.ts";
import { errorResponses, OWNED_JOB_ERRORS, SESSION_SECURITY } from "./openapi.ts";
import { streamTicketsFromEnv } from "./stream-ticket.ts";
import { jobIdParam, resumeHeader, streamQuery } from "./validate.ts";

const session = clerkAuthFromEnv();

/**
 * The live stream's auth: a stream ticket when the URL has `?ticket=` (EventSource on another
 * origin can send neither a header nor, usually, the cookie), else the Clerk session (Bearer or
 * the same-origin `__session` cookie). A ticket opens this one job's stream and nothing else.
 */
const sessionOrStreamTicket = createMiddleware<JobsEnv>(async (c, next) => {
  const ticket = c.req.query("ticket");
  if (ticket === undefined) return session(c, next);
  // jobIdParam has run: the id is well formed.
  const claims = await streamTicketsFromEnv(c.env).verify(ticket, c.req.param("id") ?? "");
  c.set("userId", claims.userId);
  c.set("sessionId", null);
  await next();
});

/** `GET /api/jobs/:id/logs/stream`: the job's live log over SSE, from its Durable Object. */
export const jobStream = new Hono<JobsEnv>().get(
  "/:id/logs/stream",
  describeRoute({
    summary: "A job's live log (SSE)",
    description:
      "`log` events (their `id:` is the last line's cursor), `: heartbeat` comments, then `done` " +
      "with the job's end and the stream closes. A reconnect resumes after `Last-Event-ID` (or " +
      "`?after=` on a first connect), missing nothing and repeating nothing.",
    tags: ["logs"],
    security: [...(SESSION_SECURITY ?? []), { streamTicket: [] }],
    responses: {
      200: {
        description: "the event stream; its schema is that of one event, `data:` decoded",
        content: {
          "text/event-stream": {
            schema: resolver(streamEventSchema, { options: { io: "output" } }),
          },
        },
      },
      ...errorResponses({
        ...OWNED_JOB_ERRORS,
        400: ["invalid_job_id", "invalid_cursor"],
        401: [
          ...OWNED_JOB_ERRORS[401],
          "malformed_ticket",
          "invalid_ticket",
          "ticket_expired",
          "ticket_wrong_job",
        ],
        429: ["too_many_viewers"],
      }),
    },
  }),
  jobIdParam,
  sessionOrStreamTicket,
  resumeHeader,
  streamQuery,
  async (c) => {
    const jobId = c.req.valid("param").id;
    // EventSource sends Last-Event-ID on its own reconnects; ?after= serves a first connect.
    const after = c.req.valid("header")["Last-Event-ID"] ?? c.req.valid("query").after;
    const job = await ownedJob(c, jobId);
    const target = new URL("https://job-stream/stream");
    // Only then may the object look in the archive when it finds the stream empty.
    if (job.archived_at) target.searchParams.set("archived", "1");
    if (after) target.searchParams.set("after", `${after.entryId}:${after.index}`);
    // The viewer's signal goes along, so the object notices when the viewer disconnects.
    return c.env.JOB_STREAM.getByName(jobId).fetch(
      new Request(target, { signal: c.req.raw.signal }),
    );
  },
);
