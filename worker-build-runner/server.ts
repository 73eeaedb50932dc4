import { type Context, Hono } from "hono";
import { createMiddleware } from "hono/factory";
import { z } from "zod";
import { errorBody } from "../src/shared/errors.ts";
import type { AesKey } from "../src/shared/job-secrets.ts";
import { openRunRequest, type RunRequest, sealedRunRequestSchema } from "../src/shared/job-spec.ts";
import { bodyAtMost, jsonBody } from "../src/shared/json-body.ts";
import type { Logger } from "../src/shared/log.ts";
import { runnerTokenAuth } from "../src/shared/runner-token.ts";
import type { JobCancels } from "./job-cancels.ts";
import { metricsRegistry, runnerMetrics } from "./metrics.ts";

export interface RunnerServerOptions {
  readonly runnerToken: string;
  /** Opens the env and secrets the Worker sealed for each job (JOB_SECRETS_KEY). */
  readonly jobSecretsKey: AesKey;
  /** Jobs run at once; the next one is answered 503 so the queue retries it later. */
  readonly concurrency: number;
  /**
   * Claims a job and, once claimed, starts it: resolves with the run (which never rejects:
   * failures end the job as failed), or `skipped` for a job that will not run here (another
   * runner holds it, or it is not queued). Rejects when the claim could not be made (Redis
   * unreachable): the request is then answered 503 so the queue delivers it again.
   */
  readonly start: (
    request: RunRequest,
  ) => Promise<{ readonly run: Promise<unknown> } | { readonly skipped: string }>;
  readonly logger?: Pick<Logger, "warn" | "error">;
  /** The running jobs `POST /jobs/:id/cancel` reaches. */
  readonly cancels?: JobCancels;
}

const cancelBodySchema = z.object({ by: z.string().min(1).max(200) });

// A spec holds at most 96 KiB of files plus steps and env: 1 MiB is far more than any valid one.
const MAX_REQUEST_BYTES = 1024 * 1024;

/**
 * The runner's HTTP face: the queue consumer hands it a job with `POST /jobs` and gets 202, or
 * 503 with Retry-After when every slot is busy (the queue then retries with backoff).
 */
export function createRunnerApp(options: RunnerServerOptions): {
  app: Hono;
  readonly active: number;
  idle(): Promise<void>;
} {
  if (options.runnerToken.length < 16)
    throw new Error("RUNNER_TOKEN must be at least 16 characters");
  if (!Number.isInteger(options.concurrency) || options.concurrency < 1)
    throw new RangeError("concurrency must be a positive integer");
  const logger = options.logger ?? console;
  const running = new Set<Promise<unknown>>();

  const auth = runnerTokenAuth(() => options.runnerToken);

  const busy = (c: Context) => {
    c.header("Retry-After", "10");
    return c.json(
      errorBody("runner_busy", `this runner is running ${running.size} jobs, its limit`),
      503,
    );
  };

  const app = new Hono()
    // Prometheus's scrape: counts only (no job id, no line), so it needs no token, like
    // /healthz; keep the port private or put the scrape behind the container host's network.
    .get("/metrics", async (c) =>
      c.body(await metricsRegistry.metrics(), 200, { "Content-Type": metricsRegistry.contentType }),
    )
    .get("/healthz", (c) =>
      c.json({ ok: true, active: running.size, concurrency: options.concurrency }),
    )
    .post(
      "/jobs",
      auth,
      bodyAtMost(MAX_REQUEST_BYTES, "a job request"),
      // Before the body is even read: the dispatcher asks again as soon as a slot frees.
      createMiddleware(async (c, next) => {
        if (running.size >= options.concurrency) return busy(c);
        await next();
      }),
      jsonBody(sealedRunRequestSchema, "invalid_job"),
      async (c) => {
        const sealed = c.req.valid("json");
        let request: RunRequest;
        try {
          request = await openRunRequest(options.jobSecretsKey, sealed);
        } catch (error) {
          logger.warn(
            `build-log-stream: job ${sealed.job_id} refused: ${error instanceof Error ? error.message : String(error)}`,
          );
          return c.json(
            errorBody(
              "sealed_values_invalid",
              "the job's sealed env and secrets do not open with this runner's JOB_SECRETS_KEY",
            ),
            400,
          );
        }
        // Again: another request may have taken the last slot while this one was opened.
        if (running.size >= options.concurrency) return busy(c);
        const jobId = request.job_id;
        // The slot is taken while claiming: a second request meanwhile must not overbook.
        let release: () => void = () => undefined;
        const slot = new Promise<void>((resolve) => (release = resolve));
        running.add(slot);
        let started: Awaited<ReturnType<RunnerServerOptions["start"]>>;
        try {
          started = await options.start(request);
        } catch (error) {
          running.delete(slot);
          release();
          logger.warn(
            `build-log-stream: could not claim job ${jobId}; answering 503 so the queue retries: ${error instanceof Error ? error.message.slice(0, 200) : String(error)}`,
          );
          c.header("Retry-After", "5");
          return c.json(
            errorBody("claim_failed", "the runner could not claim the job (Redis unreachable)"),
            503,
          );
        }
        running.delete(slot);
        release();
        if ("skipped" in started)
          return c.json({ accepted: false, job_id: jobId, reason: started.skipped }, 202);
        runnerMetrics.jobsRunning.inc();
        const job = started.run
          .catch((error: unknown) =>
            logger.error(`build-log-stream: job ${jobId} crashed the runner's job loop`, error),
          )
          .finally(() => {
            running.delete(job);
            runnerMetrics.jobsRunning.dec();
          });
        running.add(job);
        return c.json({ accepted: true, job_id: jobId }, 202);
      },
    )
    // The Worker's cancel, straight to the runner that runs the job. A job not running here
    // answers 404: the Worker also stored the cancel, which the job's heartbeat finds.
    .post("/jobs/:id/cancel", auth, jsonBody(cancelBodySchema, "invalid_cancel"), (c) => {
      const jobId = c.req.param("id");
      const { by } = c.req.valid("json");
      if (options.cancels?.cancel(jobId, by) !== true)
        return c.json(errorBody("job_not_running", "no such job runs here"), 404);
      return c.json({ cancelled: true, job_id: jobId }, 202);
    })
    .notFound((c) => c.json(errorBody("not_found", "no such route"), 404));

  return {
    app,
    get active() {
      return running.size;
    },
    async idle() {
      await Promise.allSettled([...running]);
    },
  };
}
