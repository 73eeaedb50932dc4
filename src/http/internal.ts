import { Hono } from "hono";
import { bodyLimit } from "hono/body-limit";
import { createMiddleware } from "hono/factory";
import { timingSafeEqual } from "hono/utils/buffer";
import { jobDispatcher } from "../jobs/dispatcher.ts";
import { recordTtlSeconds } from "../jobs/expiry.ts";
import { sweep } from "../jobs/sweep.ts";
import { archiveStoreFromEnv } from "../log/archive-store.ts";
import { archiveLog, archiveOptionsFromEnv } from "../log/archiver.ts";
import { createRedis } from "../redis.ts";
import {
  compareEntryIds,
  decodeEntry,
  EntryFormatError,
  type StreamEntry,
} from "../shared/entry.ts";
import { isValidJobId } from "../shared/keys.ts";
import { livePushSchema } from "../shared/live-push.ts";
import { ApiError } from "./errors.ts";

/** The runner's shared token, as a Bearer token; compared in constant time. */
const runnerAuth = createMiddleware<{ Bindings: Env }>(async (c, next) => {
  const expected = c.env.RUNNER_TOKEN;
  const header = c.req.header("Authorization") ?? "";
  const token = header.startsWith("Bearer ") ? header.slice("Bearer ".length) : "";
  if (
    expected === undefined ||
    expected === "" ||
    token === "" ||
    !(await timingSafeEqual(token, expected))
  ) {
    throw new ApiError(401, "unauthenticated", "the runner token is missing or wrong");
  }
  await next();
});

// A push carries what one Upstash request wrote (4 MiB of lines at most) or a few coalesced.
const MAX_PUSH_BYTES = 8 * 1024 * 1024;

/** Routes for the runner. */
export const internal = new Hono<{ Bindings: Env }>()
  .use(runnerAuth)
  .post("/jobs/:id/wake", async (c) => {
    const jobId = c.req.param("id");
    if (!isValidJobId(jobId)) throw new ApiError(400, "invalid_job_id", "malformed job id");
    await c.env.JOB_STREAM.get(c.env.JOB_STREAM.idFromName(jobId)).wake();
    return c.body(null, 204);
  })
  // The runner's entries right after their XADD: fanned out by the job's object without a read.
  .post(
    "/jobs/:id/entries",
    bodyLimit({
      maxSize: MAX_PUSH_BYTES,
      onError: () => {
        throw new ApiError(413, "too_large", `a push is at most ${MAX_PUSH_BYTES} bytes`);
      },
    }),
    async (c) => {
      const jobId = c.req.param("id");
      if (!isValidJobId(jobId)) throw new ApiError(400, "invalid_job_id", "malformed job id");
      let body: unknown;
      try {
        body = await c.req.json();
      } catch {
        throw new ApiError(400, "invalid_json", "the body is not JSON");
      }
      const parsed = livePushSchema.safeParse(body);
      if (!parsed.success)
        throw new ApiError(400, "invalid_push", parsed.error.issues[0]?.message ?? "bad push");
      let entries: StreamEntry[];
      try {
        // Decoded here, by the same decoder a Redis read goes through: the object gets entries
        // exactly as it would have read them.
        entries = parsed.data.entries.map((entry) => decodeEntry(entry.id, entry.fields));
      } catch (error) {
        if (error instanceof EntryFormatError)
          throw new ApiError(400, "invalid_push", error.message, { cause: error });
        throw error;
      }
      const ids = [parsed.data.previous ?? "0-0", ...entries.map((entry) => entry.id)];
      if (ids.some((id, i) => i > 0 && compareEntryIds(ids[i - 1] ?? "0-0", id) >= 0))
        throw new ApiError(400, "invalid_push", "entry ids must increase, after the previous id");
      const answer = await c.env.JOB_STREAM.get(c.env.JOB_STREAM.idFromName(jobId)).push({
        writer: parsed.data.writer,
        previous: parsed.data.previous,
        entries,
      });
      return c.json(answer);
    },
  )
  // Closes the job's live streams; viewers reconnect and resume from their last id.
  .post("/jobs/:id/disconnect", async (c) => {
    const jobId = c.req.param("id");
    if (!isValidJobId(jobId)) throw new ApiError(400, "invalid_job_id", "malformed job id");
    const disconnected = await c.env.JOB_STREAM.get(
      c.env.JOB_STREAM.idFromName(jobId),
    ).disconnectViewers();
    return c.json({ disconnected });
  })
  // The Cron Trigger's sweep, on demand (local development has no cron).
  .post("/sweep", async (c) => c.json(await sweep(c.env)))
  .post("/jobs/:id/finished", async (c) => {
    const jobId = c.req.param("id");
    if (!isValidJobId(jobId)) throw new ApiError(400, "invalid_job_id", "malformed job id");
    await c.env.JOB_STREAM.get(c.env.JOB_STREAM.idFromName(jobId)).wake();
    // Its runner slot is free: the dispatcher hands over the next job now.
    await jobDispatcher(c.env).ended(jobId);
    // The last segments are archived after the answer; if that fails or stops short, the
    // runner's archive calls or the scheduled sweep finish it.
    c.executionCtx.waitUntil(
      archiveLog(createRedis(c.env), archiveStoreFromEnv(c.env), jobId, {
        ...archiveOptionsFromEnv(c.env),
        recordTtl: recordTtlSeconds(c.env),
      })
        .then(() => undefined)
        .catch((error: unknown) => {
          console.error(`archive: job ${jobId} failed; the sweep will retry`, error);
        }),
    );
    return c.body(null, 202);
  })
  // Archives the job's complete segments so far (the runner calls it as the log grows, and after
  // the end until `complete`): answers the progress, with `more` while segments are waiting.
  .post("/jobs/:id/archive", async (c) => {
    const jobId = c.req.param("id");
    if (!isValidJobId(jobId)) throw new ApiError(400, "invalid_job_id", "malformed job id");
    const progress = await archiveLog(createRedis(c.env), archiveStoreFromEnv(c.env), jobId, {
      ...archiveOptionsFromEnv(c.env),
      recordTtl: recordTtlSeconds(c.env),
    });
    if (progress === null) throw new ApiError(404, "job_not_found", "no such job");
    return c.json(progress);
  });
