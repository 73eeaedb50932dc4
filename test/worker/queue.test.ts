import { createExecutionContext, createMessageBatch, getQueueResult } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import worker from "../../src/index.ts";
import { MAX_DELIVERIES, retryDelaySeconds } from "../../src/jobs/queue.ts";
import { decodeStreamReply } from "../../src/shared/entry.ts";
import type { RunRequest } from "../../src/shared/job-spec.ts";
import { logStreamKey } from "../../src/shared/keys.ts";
import { createJob, testRedis } from "../support/jobs.ts";
import { uniqueJobId } from "../support/redis.ts";

// The queue consumer against a runner URL where nothing listens (this project's RUNNER_URL):
// a network failure is retried with backoff, and after the last delivery the job fails with
// a system line instead of waiting forever. The happy path (202) runs in test/runner/e2e.test.ts.
const redis = testRedis(env);

function request(jobId: string): RunRequest {
  return {
    job_id: jobId,
    owner: "user_queue",
    spec: {
      steps: [{ name: "Build", phase: "build", command: "true" }],
      env: {},
      secrets: {},
      files: {},
    },
  };
}

async function deliver(body: unknown, attempts: number) {
  const batch = createMessageBatch("build-jobs", [
    { id: crypto.randomUUID(), timestamp: new Date(), attempts, body },
  ]);
  const ctx = createExecutionContext();
  await worker.queue(batch, env);
  return getQueueResult(batch, ctx);
}

describe("the queue consumer", () => {
  it("retries with backoff while the runner cannot be reached", async () => {
    const jobId = uniqueJobId("queue-retry");
    await createJob(redis, jobId, "user_queue", "queued");
    const first = await deliver(request(jobId), 1);
    expect(first.explicitAcks).toEqual([]);
    expect(first.retryMessages).toHaveLength(1);
    const later = await deliver(request(jobId), 4);
    expect(later.retryMessages).toHaveLength(1);
    // The harness does not report the delay; the backoff it asks for grows, up to 5 minutes.
    expect([1, 2, 3, 4, 10, 20].map(retryDelaySeconds)).toEqual([5, 10, 20, 40, 300, 300]);
    const job = JSON.parse((await redis.get<string>(`job:${jobId}:meta`)) ?? "{}") as {
      status: string;
    };
    expect(job.status).toBe("queued");
  });

  it("fails the job, with a system line its viewers see, after the last delivery", async () => {
    const jobId = uniqueJobId("queue-give-up");
    await createJob(redis, jobId, "user_queue", "queued");
    const result = await deliver(request(jobId), MAX_DELIVERIES);
    expect(result.retryMessages).toEqual([]);
    expect(result.explicitAcks).toHaveLength(1);
    const job = JSON.parse((await redis.get<string>(`job:${jobId}:meta`)) ?? "{}") as {
      status: string;
    };
    expect(job.status).toBe("failed");
    const entries = decodeStreamReply(await redis.xrange(logStreamKey(jobId), "-", "+"));
    expect(entries.at(-1)?.end).toBe("failed");
    expect(entries.flatMap((entry) => entry.lines)[0]?.text).toMatch(
      /^No build runner took this job/,
    );
  });

  it("drops a malformed message instead of retrying it forever", async () => {
    const result = await deliver({ job_id: "../etc", spec: "nope" }, 1);
    expect(result.explicitAcks).toHaveLength(1);
    expect(result.retryMessages).toEqual([]);
  });
});
