import { createHash, timingSafeEqual } from "node:crypto";
import { type Context, Hono } from "hono";
import { bodyLimit } from "hono/body-limit";
import { createMiddleware } from "hono/factory";
import type { AesKey } from "../src/shared/job-secrets.ts";
import { openRunRequest, type RunRequest, sealedRunRequestSchema } from "../src/shared/job-spec.ts";

export interface RunnerServerOptions {
  readonly runnerToken: string;
  /** Opens the env and secrets the Worker sealed for each job (JOB_SECRETS_KEY). */
  readonly jobSecretsKey: AesKey;
  /** Jobs run at once; the next one is answered 503 so the queue retries it later. */
  readonly concurrency: number;
  /** Runs a job to its end; never rejects (failures end the job as failed). */
  readonly run: (request: RunRequest) => Promise<unknown>;
  readonly logger?: { warn(message: string): void; error(message: string, error?: unknown): void };
}

// Constant time whatever the input: digests have equal length, so no early exit on length.
function sameToken(given: string, expected: string): boolean {
  const digest = (text: string) => createHash("sha256").update(text).digest();
  return timingSafeEqual(digest(given), digest(expected));
}

const jsonError = (code: string, message: string) => ({ error: { code, message } });
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

  const auth = createMiddleware(async (c, next) => {
    const header = c.req.header("Authorization") ?? "";
    const token = header.startsWith("Bearer ") ? header.slice(7) : "";
    if (!sameToken(token, options.runnerToken))
      return c.json(jsonError("unauthenticated", "the runner token is missing or wrong"), 401);
    await next();
  });

  const busy = (c: Context) => {
    c.header("Retry-After", "10");
    return c.json(
      jsonError("runner_busy", `this runner is running ${running.size} jobs, its limit`),
      503,
    );
  };

  const app = new Hono()
    .get("/healthz", (c) =>
      c.json({ ok: true, active: running.size, concurrency: options.concurrency }),
    )
    .post(
      "/jobs",
      auth,
      bodyLimit({
        maxSize: MAX_REQUEST_BYTES,
        onError: (c) =>
          c.json(
            jsonError("too_large", `a job request is at most ${MAX_REQUEST_BYTES} bytes`),
            413,
          ),
      }),
      async (c) => {
        // Before the body is even read: the dispatcher asks again as soon as a slot frees.
        if (running.size >= options.concurrency) return busy(c);
        let body: unknown;
        try {
          body = await c.req.json();
        } catch {
          return c.json(jsonError("invalid_json", "the body is not JSON"), 400);
        }
        const parsed = sealedRunRequestSchema.safeParse(body);
        if (!parsed.success)
          return c.json(
            jsonError(
              "invalid_job",
              parsed.error.issues
                .map((issue) => `${issue.path.join(".")}: ${issue.message}`)
                .join("; "),
            ),
            400,
          );
        let request: RunRequest;
        try {
          request = await openRunRequest(options.jobSecretsKey, parsed.data);
        } catch (error) {
          logger.warn(
            `build-log-stream: job ${parsed.data.job_id} refused: ${error instanceof Error ? error.message : String(error)}`,
          );
          return c.json(
            jsonError(
              "sealed_values_invalid",
              "the job's sealed env and secrets do not open with this runner's JOB_SECRETS_KEY",
            ),
            400,
          );
        }
        // Again: another request may have taken the last slot while this one was opened.
        if (running.size >= options.concurrency) return busy(c);
        const job = options
          .run(request)
          .catch((error: unknown) =>
            logger.error(
              `build-log-stream: job ${request.job_id} crashed the runner's job loop`,
              error,
            ),
          )
          .finally(() => running.delete(job));
        running.add(job);
        return c.json({ accepted: true, job_id: request.job_id }, 202);
      },
    )
    .notFound((c) => c.json(jsonError("not_found", "no such route"), 404));

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
