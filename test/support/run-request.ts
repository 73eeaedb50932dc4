import type { Redis } from "@upstash/redis";
import type { JobRecord } from "../../src/shared/job.ts";
import type { JobSpec, RunRequest } from "../../src/shared/job-spec.ts";
import { jobKey } from "../../src/shared/keys.ts";
import { uniqueJobId } from "./redis.ts";

/**
 * A job as the Worker leaves it for the runner (Node side: the runner's own Upstash client): its
 * record `queued` in Redis, and the run request the dispatcher would send, with `spec` over an
 * empty job.
 */
export async function queuedJob(
  redis: Redis,
  owner: string,
  label: string,
  spec: Partial<JobSpec>,
): Promise<RunRequest> {
  const jobId = uniqueJobId(label);
  const job: JobRecord = {
    id: jobId,
    owner,
    status: "queued",
    created_at: new Date().toISOString(),
    started_at: null,
    finished_at: null,
  };
  await redis.set(jobKey(jobId), JSON.stringify(job));
  return {
    job_id: jobId,
    owner,
    spec: { steps: [], env: {}, secrets: {}, files: {}, ...spec },
  };
}
