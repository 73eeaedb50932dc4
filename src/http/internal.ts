import { Hono } from "hono";
import { createMiddleware } from "hono/factory";
import { timingSafeEqual } from "hono/utils/buffer";
import { jobDispatcher } from "../jobs/dispatcher.ts";
import { sweep } from "../jobs/sweep.ts";
import { archiveJob, archiveStoreFromEnv } from "../log/archive.ts";
import { createRedis } from "../redis.ts";
import { isValidJobId } from "../shared/keys.ts";
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

/** Routes for the runner. */
export const internal = new Hono<{ Bindings: Env }>()
  .use(runnerAuth)
  .post("/jobs/:id/wake", async (c) => {
    const jobId = c.req.param("id");
    if (!isValidJobId(jobId)) throw new ApiError(400, "invalid_job_id", "malformed job id");
    await c.env.JOB_STREAM.get(c.env.JOB_STREAM.idFromName(jobId)).wake();
    return c.body(null, 204);
  })
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
    // Archived after the answer; if this fails, the scheduled sweep archives it.
    c.executionCtx.waitUntil(
      archiveJob(createRedis(c.env), archiveStoreFromEnv(c.env), jobId).catch((error: unknown) => {
        console.error(`archive: job ${jobId} failed; the sweep will retry`, error);
      }),
    );
    return c.body(null, 202);
  });
