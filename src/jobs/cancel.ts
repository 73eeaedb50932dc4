import { workerConfig } from "../config.ts";
import { createRedis } from "../redis.ts";
import { ApiError } from "../shared/errors.ts";
import { isTerminalStatus, type JobRecord } from "../shared/job.ts";
import type { CancelRequest } from "../shared/job-scripts.ts";
import { cancelKey } from "../shared/keys.ts";
import { runnerAuthorization } from "../shared/runner-token.ts";
import { jobDispatcher } from "./dispatcher.ts";
import { endJob } from "./lifecycle.ts";

const RUNNER_CANCEL_TIMEOUT_MS = 5_000;

export type CancelResult =
  /** The job was queued: it is cancelled now and will never start. */
  | { readonly kind: "cancelled"; readonly job: JobRecord }
  /** The job runs: its runner was asked (directly, and through its heartbeat) to stop it. */
  | { readonly kind: "requested"; readonly job: JobRecord };

export function cancelledBeforeStartMessage(by: string): string {
  return `Cancelled by ${by} before it started.`;
}

/**
 * Cancels a job for `by` (its owner). A queued job ends at once as `cancelled` (one script, which
 * does nothing if a runner claimed it meanwhile: then it is treated as running) and leaves the
 * dispatcher, so it never starts. A running job's cancel is stored (the runner's heartbeat reads
 * it within a third of its lease) and sent to the runner service, which stops the build at once
 * when the job runs there; the runner then ends the log with who cancelled it. Redis commands:
 * queued 2 (GET, the end script), running 2 (GET, SET).
 */
export async function cancelJob(env: Env, job: JobRecord, by: string): Promise<CancelResult> {
  const redis = createRedis(env);
  let current = job;
  if (current.status === "queued") {
    const outcome = await endJob(
      redis,
      job.id,
      "cancelled",
      cancelledBeforeStartMessage(by),
      "queued",
    );
    if (outcome.failedNow && outcome.job !== null) {
      await jobDispatcher(env).ended(job.id);
      await env.JOB_STREAM.getByName(job.id).wake();
      return { kind: "cancelled", job: outcome.job };
    }
    current = outcome.job ?? current;
  }
  if (isTerminalStatus(current.status))
    throw new ApiError(409, "job_ended", `the job already ended (${current.status})`);
  const request: CancelRequest = { by, at: new Date().toISOString() };
  await redis.set(cancelKey(job.id), JSON.stringify(request), { ex: 86_400 });
  await askRunner(env, job.id, request);
  // The record as read: the runner's end comes later, through the stream's `done`.
  return { kind: "requested", job: current };
}

// Best effort: the runner behind RUNNER_URL may not be the one running the job (404), or be out
// of reach; the stored cancel reaches the job through its heartbeat either way.
async function askRunner(env: Env, jobId: string, request: CancelRequest): Promise<void> {
  const { runner } = workerConfig(env);
  try {
    const response = await fetch(new URL(`/jobs/${jobId}/cancel`, runner.url), {
      method: "POST",
      headers: {
        Authorization: runnerAuthorization(runner.token),
        "Content-Type": "application/json",
      },
      body: JSON.stringify({ by: request.by }),
      signal: AbortSignal.timeout(RUNNER_CANCEL_TIMEOUT_MS),
    });
    await response.body?.cancel();
  } catch (error) {
    console.warn(
      `build-log-stream: asking the runner to cancel job ${jobId} failed (its heartbeat will see the cancel): ${error instanceof Error ? error.message : String(error)}`,
    );
  }
}
