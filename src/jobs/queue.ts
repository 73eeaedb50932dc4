import { createRedis } from "../redis.ts";
import { type RunRequest, runRequestSchema } from "../shared/job-spec.ts";
import { failJob } from "./lifecycle.ts";

/** After this many deliveries no runner took the job: it fails instead of waiting forever. */
export const MAX_DELIVERIES = 10;

export function retryDelaySeconds(attempts: number): number {
  return Math.min(300, 5 * 2 ** Math.max(0, attempts - 1));
}

/**
 * The queue's consumer hands each job to the runner service. 202: done. 503 (the runner is at
 * its concurrency limit) or a network failure: retried with backoff. Any other answer means
 * the runner will never take it: the job fails with a system line saying so.
 */
export async function consumeJobs(batch: MessageBatch<unknown>, env: Env): Promise<void> {
  for (const message of batch.messages) {
    const parsed = runRequestSchema.safeParse(message.body);
    if (!parsed.success) {
      console.error("build-log-stream: dropped a malformed queue message", parsed.error.issues);
      message.ack();
      continue;
    }
    const request: RunRequest = parsed.data;
    let outcome: "accepted" | "busy" | "refused";
    let detail = "";
    try {
      const response = await fetch(new URL("/jobs", env.RUNNER_URL), {
        method: "POST",
        headers: {
          Authorization: `Bearer ${env.RUNNER_TOKEN}`,
          "Content-Type": "application/json",
        },
        body: JSON.stringify(request),
      });
      outcome =
        response.status === 202
          ? "accepted"
          : response.status === 503 || response.status >= 500
            ? "busy"
            : "refused";
      detail = `the runner answered ${response.status}`;
    } catch (error) {
      outcome = "busy";
      detail = `the runner could not be reached: ${error instanceof Error ? error.message : String(error)}`;
    }
    if (outcome === "accepted") {
      message.ack();
    } else if (outcome === "busy" && message.attempts < MAX_DELIVERIES) {
      message.retry({ delaySeconds: retryDelaySeconds(message.attempts) });
    } else {
      await failJob(createRedis(env), request.job_id, `No build runner took this job (${detail}).`);
      message.ack();
    }
  }
}
