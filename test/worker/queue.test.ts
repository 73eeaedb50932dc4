import { createExecutionContext, createMessageBatch, getQueueResult } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import worker from "../../src/index.ts";
import { jobDispatcher } from "../../src/jobs/dispatcher.ts";
import { jobSecretsKey } from "../../src/shared/job-secrets.ts";
import { type RunRequest, sealRunRequest } from "../../src/shared/job-spec.ts";
import { createJob, testRedis } from "../support/jobs.ts";
import { uniqueJobId } from "../support/redis.ts";

// The Queue's consumer hands each job to the dispatcher and acks it; what happens next is
// test/worker/dispatcher.test.ts. A message is the run request with env and secrets sealed.
const redis = testRedis(env);

function request(jobId: string, owner: string): RunRequest {
  return {
    job_id: jobId,
    owner,
    spec: {
      steps: [{ name: "Build", phase: "build", command: "true" }],
      env: {},
      secrets: { TOKEN: "queue-test-secret-value" },
      files: {},
    },
  };
}

async function deliver(body: unknown, attempts = 1) {
  const batch = createMessageBatch("build-jobs", [
    { id: crypto.randomUUID(), timestamp: new Date(), attempts, body },
  ]);
  const ctx = createExecutionContext();
  await worker.queue(batch, env);
  return getQueueResult(batch, ctx);
}

describe("the queue consumer", () => {
  it("hands a sealed job to the dispatcher and acks it", async () => {
    const jobId = uniqueJobId("queue-handover");
    // A gateway in front of the runner is down for this owner: the job stays in the dispatcher.
    const owner = `user_down_${crypto.randomUUID().replaceAll("-", "")}`;
    await createJob(redis, jobId, owner, "queued");
    const sealed = await sealRunRequest(
      await jobSecretsKey(env.JOB_SECRETS_KEY),
      request(jobId, owner),
    );
    const result = await deliver(sealed);
    expect(result.explicitAcks).toHaveLength(1);
    expect(result.retryMessages).toEqual([]);
    expect(await jobDispatcher(env).holds(jobId)).toBe("pending");
    await jobDispatcher(env).ended(jobId);
  });

  it("does not hand a job over again when the Queue delivers its message twice", async () => {
    const jobId = uniqueJobId("queue-twice");
    // The test runner ends this owner's jobs at once.
    const owner = `user_once_${crypto.randomUUID().replaceAll("-", "")}`;
    await createJob(redis, jobId, owner, "queued");
    const sealed = await sealRunRequest(
      await jobSecretsKey(env.JOB_SECRETS_KEY),
      request(jobId, owner),
    );
    const startsOf = async () => {
      const response = await fetch(`${env.TEST_RUNNER_URL}/__test/started`);
      return ((await response.json()) as { started: string[] }).started.filter((id) => id === jobId)
        .length;
    };
    await deliver(sealed);
    for (let i = 0; i < 200 && (await startsOf()) === 0; i++)
      await new Promise((resolve) => setTimeout(resolve, 50));
    await jobDispatcher(env).ended(jobId);
    await deliver(sealed, 2);
    expect(await jobDispatcher(env).holds(jobId)).toBeNull();
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(await startsOf()).toBe(1);
  });

  it("drops a malformed message instead of retrying it forever", async () => {
    const result = await deliver({ job_id: "../etc", spec: "nope" });
    expect(result.explicitAcks).toHaveLength(1);
    expect(result.retryMessages).toEqual([]);
  });

  it("drops a message whose env and secrets are in the clear", async () => {
    const jobId = uniqueJobId("queue-plain");
    const result = await deliver(request(jobId, "user_queue"));
    expect(result.explicitAcks).toHaveLength(1);
    expect(await jobDispatcher(env).holds(jobId)).toBeNull();
  });
});
