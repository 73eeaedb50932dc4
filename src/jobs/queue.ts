import { createRedis } from "../redis.ts";
import { exponentialBackoff } from "../shared/backoff.ts";
import { sealedRunRequestSchema } from "../shared/job-spec.ts";
import { log } from "../shared/log.ts";
import { jobDispatcher } from "./dispatcher.ts";
import { failJob } from "./lifecycle.ts";

/** After this many deliveries the dispatcher could not take the job: it fails instead. */
export const MAX_DELIVERIES = 10;

/** The queue's delay before delivery `attempts + 1`: 5 s, doubling, at most 5 minutes. */
export const retryDelaySeconds = exponentialBackoff({ initial: 5, max: 300 });

/**
 * The Queue's consumer hands each job to the dispatcher (src/jobs/dispatcher.ts), which keeps
 * it until a runner slot is free and picks fairly between users. The Queue is only the durable
 * way in: retrying the runner from here, with the Queue's backoff, left slots idle while jobs
 * waited out their delays. Only a dispatcher that cannot be reached is retried; after the last
 * delivery the job fails with a system line saying so.
 */
export async function consumeJobs(batch: MessageBatch<unknown>, env: Env): Promise<void> {
  for (const message of batch.messages) {
    const parsed = sealedRunRequestSchema.safeParse(message.body);
    if (!parsed.success) {
      log.error("build-log-stream: dropped a malformed queue message", parsed.error.issues);
      message.ack();
      continue;
    }
    try {
      await jobDispatcher(env).submit(parsed.data);
      message.ack();
    } catch (error) {
      const detail = error instanceof Error ? error.message : String(error);
      if (message.attempts < MAX_DELIVERIES) {
        log.warn(`build-log-stream: the dispatcher did not take a job, retrying: ${detail}`);
        message.retry({ delaySeconds: retryDelaySeconds(message.attempts) });
      } else {
        await failJob(
          createRedis(env),
          parsed.data.job_id,
          `No build runner took this job (the dispatcher failed: ${detail}).`,
        );
        message.ack();
      }
    }
  }
}
