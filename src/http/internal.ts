import { Hono } from "hono";
import { workerConfig } from "../config.ts";
import { jobDispatcher } from "../jobs/dispatcher.ts";
import { recordTtlSeconds } from "../jobs/expiry.ts";
import { sweep } from "../jobs/sweep.ts";
import { archiveStoreFromEnv } from "../log/archive-store.ts";
import { archiveLog, archiveOptionsFromEnv } from "../log/archiver.ts";
import { createRedis } from "../redis.ts";
import { ApiError } from "../shared/errors.ts";
import { bodyAtMost, jsonBody } from "../shared/json-body.ts";
import { decodeLivePush, livePushSchema } from "../shared/live-push.ts";
import { log } from "../shared/log.ts";
import { runnerTokenAuth } from "../shared/runner-token.ts";
import { jobIdParam } from "./validate.ts";

// A push carries what one Upstash request wrote (4 MiB of lines at most) or a few coalesced.
const MAX_PUSH_BYTES = 8 * 1024 * 1024;

/** Routes for the runner. */
export const internal = new Hono<{ Bindings: Env }>()
  .use(runnerTokenAuth<{ Bindings: Env }>((c) => workerConfig(c.env).runner.token))
  .post("/jobs/:id/wake", jobIdParam, async (c) => {
    await c.env.JOB_STREAM.getByName(c.req.valid("param").id).wake();
    return c.body(null, 204);
  })
  // The runner's entries right after their XADD: fanned out by the job's object without a read.
  .post(
    "/jobs/:id/entries",
    bodyAtMost(MAX_PUSH_BYTES, "a push"),
    jobIdParam,
    jsonBody(livePushSchema, "invalid_push"),
    async (c) => {
      const jobId = c.req.valid("param").id;
      // Decoded here, by the same decoder a Redis read goes through: the object gets entries
      // exactly as it would have read them.
      const push = decodeLivePush(c.req.valid("json"));
      const answer = await c.env.JOB_STREAM.getByName(jobId).push(push);
      return c.json(answer);
    },
  )
  // The same pushes over one WebSocket to the job's object (pushMessageSchema): the runner's
  // cheaper way in. A POST is a request of the Worker's own and an RPC; a message goes straight
  // to the object: in local workerd a push cost 0.3-0.4 ms of CPU this way against 1.9-3.0 ms.
  .get("/jobs/:id/push-socket", jobIdParam, (c) => {
    if (c.req.header("Upgrade")?.toLowerCase() !== "websocket")
      throw new ApiError(426, "upgrade_required", "the push socket is a WebSocket");
    return c.env.JOB_STREAM.getByName(c.req.valid("param").id).fetch(
      new Request("https://job-stream/push-socket", c.req.raw),
    );
  })
  // Closes the job's live streams; viewers reconnect and resume from their last id.
  .post("/jobs/:id/disconnect", jobIdParam, async (c) => {
    const disconnected = await c.env.JOB_STREAM.getByName(
      c.req.valid("param").id,
    ).disconnectViewers();
    return c.json({ disconnected });
  })
  // The Cron Trigger's sweep, on demand (local development has no cron).
  .post("/sweep", async (c) => c.json(await sweep(c.env)))
  .post("/jobs/:id/finished", jobIdParam, async (c) => {
    const jobId = c.req.valid("param").id;
    await c.env.JOB_STREAM.getByName(jobId).wake();
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
          log.error(`archive: job ${jobId} failed; the sweep will retry`, error);
        }),
    );
    return c.body(null, 202);
  })
  // Archives the job's complete segments so far (the runner calls it as the log grows, and after
  // the end until `complete`): answers the progress, with `more` while segments are waiting.
  .post("/jobs/:id/archive", jobIdParam, async (c) => {
    const jobId = c.req.valid("param").id;
    const progress = await archiveLog(createRedis(c.env), archiveStoreFromEnv(c.env), jobId, {
      ...archiveOptionsFromEnv(c.env),
      recordTtl: recordTtlSeconds(c.env),
    });
    if (progress === null) throw new ApiError(404, "job_not_found", "no such job");
    return c.json(progress);
  });
