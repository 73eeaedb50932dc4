import { afterEach, describe, expect, it } from "vitest";
import { failJob } from "../../src/jobs/lifecycle.ts";
import type { JobSpec, RunRequest } from "../../src/shared/job-spec.ts";
import { jobKey, leaseKey, QUEUED_JOBS_KEY } from "../../src/shared/keys.ts";
import { claimJob, runJob } from "../../worker-build-runner/run-job.ts";
import { runJobBed } from "../support/run-job-bed.ts";

// Stalls and lost answers between the runner and Redis, injected by the Upstash bridge: a
// healthy build still ends as its exit code says, with one end, and no job is left stuck.
const bed = runJobBed({
  token: "durability-test",
  owner: "user_durability",
  requestTimeoutMs: 2_000,
});
const { entriesOf, warnings } = bed;
afterEach(() => {
  bed.bridge.faults.reset();
  warnings.length = 0;
});

/** A queued job, waiting in the queued index too, as the sweep's queue bound sees it. */
async function queuedJob(label: string, spec: Partial<JobSpec>): Promise<RunRequest> {
  const request = await bed.queuedJob(label, spec);
  await bed.redis.zadd(QUEUED_JOBS_KEY, { score: Date.now(), member: request.job_id });
  return request;
}

const numbered = (count: number, pauseSeconds: number) =>
  `for i in $(seq 1 ${count}); do echo "line $i"; sleep ${pauseSeconds}; done`;
const statusOf = async (jobId: string) => (await bed.jobOf(jobId)).status;
const stdoutOf = async (jobId: string) =>
  (await entriesOf(jobId))
    .flatMap((entry) => entry.lines)
    .filter((line) => line.source === "stdout")
    .map((line) => line.text);
const waitFor = async (what: string, check: () => Promise<boolean>): Promise<void> => {
  for (let i = 0; i < 200; i++) {
    if (await check()) return;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`timed out waiting for ${what}`);
};

describe("a job through Redis faults", () => {
  it("recognises its own claim when the claim's answer was lost, and runs the job once", async () => {
    const request = await queuedJob("claim-lost", {
      steps: [{ name: "Build", phase: "build", command: "echo once" }],
    });
    bed.bridge.faults.failNext(1, "after-exec"); // the claim is applied, its answer never arrives
    const outcome = await runJob(request, { ...bed.deps, runnerId: "runner-a" });
    expect(outcome).toMatchObject({ kind: "finished", status: "ready" });
    expect(await stdoutOf(request.job_id)).toEqual(["once"]);
    expect(await bed.redis.zscore(QUEUED_JOBS_KEY, request.job_id)).toBeNull();
    // A redelivery of the same run request (the queue retried) is not run again.
    expect(await runJob(request, { ...bed.deps, runnerId: "runner-a" })).toMatchObject({
      kind: "skipped",
    });
  });

  it("rejects a claim it could not make, so the run request is not acknowledged", async () => {
    const request = await queuedJob("claim-down", {
      steps: [{ name: "Build", phase: "build", command: "true" }],
    });
    bed.bridge.faults.outage(60_000);
    await expect(claimJob(request, { ...bed.deps, runnerId: "runner-a" })).rejects.toThrow();
    bed.bridge.faults.reset();
    expect(await statusOf(request.job_id)).toBe("queued");
    expect(await bed.redis.exists(leaseKey(request.job_id))).toBe(0);
  }, 30_000);

  it("re-takes its lease after a stall longer than the lease, and ends ready with one end entry", async () => {
    const request = await queuedJob("stall", {
      steps: [{ name: "Build", phase: "build", command: numbered(40, 0.1) }],
    });
    const run = runJob(request, { ...bed.deps, runnerId: "runner-a", leaseMs: 1_500 });
    await waitFor("the first lines", async () => (await stdoutOf(request.job_id)).length > 0);
    bed.bridge.faults.outage(3_000); // the lease (1.5 s) expires in Redis meanwhile
    const outcome = await run;
    expect(outcome).toMatchObject({ kind: "finished", status: "ready" });
    expect(warnings.some((warning) => warning.includes("re-taken after it lapsed"))).toBe(true);
    expect(await stdoutOf(request.job_id)).toEqual(
      Array.from({ length: 40 }, (_, i) => `line ${i + 1}`),
    );
    const entries = await entriesOf(request.job_id);
    expect(entries.filter((entry) => entry.end !== undefined)).toHaveLength(1);
    expect(entries.at(-1)?.end).toBe("ready");
    expect(await statusOf(request.job_id)).toBe("ready");
  }, 30_000);

  it("restores the job record when Redis lost it, and says so in the log", async () => {
    const request = await queuedJob("record-lost", {
      steps: [{ name: "Build", phase: "build", command: numbered(20, 0.1) }],
    });
    const run = runJob(request, { ...bed.deps, runnerId: "runner-a", leaseMs: 1_500 });
    await waitFor("the job to run", async () => (await stdoutOf(request.job_id)).length > 0);
    await bed.redis.del(jobKey(request.job_id));
    await waitFor(
      "the record back",
      async () => (await bed.redis.exists(jobKey(request.job_id))) === 1,
    );
    expect(await statusOf(request.job_id)).toBe("running");
    expect(await run).toMatchObject({ status: "ready" });
    expect(await statusOf(request.job_id)).toBe("ready");
    const texts = (await entriesOf(request.job_id)).flatMap((e) => e.lines).map((l) => l.text);
    expect(texts).toContain("Redis lost this job's record while it ran; it has been restored.");
  }, 30_000);

  it("ends once: a job the sweep failed keeps that end, and its runner stops the build", async () => {
    const request = await queuedJob("swept", {
      steps: [{ name: "Build", phase: "build", command: numbered(100, 0.05) }],
    });
    const run = runJob(request, { ...bed.deps, runnerId: "runner-a", leaseMs: 1_500 });
    await waitFor("the job to run", async () => (await stdoutOf(request.job_id)).length > 0);
    // The Worker's failJob, as the sweep calls it (the same Upstash client API).
    const swept = await failJob(
      bed.redis as unknown as Parameters<typeof failJob>[0],
      request.job_id,
      "The build runner was lost",
    );
    expect(swept.failedNow).toBe(true);
    expect(await run).toMatchObject({ kind: "finished", status: "failed" });
    const entries = await entriesOf(request.job_id);
    const ends = entries.filter((entry) => entry.end !== undefined);
    expect(ends).toHaveLength(1);
    expect(ends[0]?.end).toBe("failed");
    expect(ends[0]?.lines.map((line) => line.text)).toEqual(["The build runner was lost"]);
    expect(await statusOf(request.job_id)).toBe("failed");
    // Noticed at the next heartbeat (a third of the lease): the build was stopped, not finished.
    expect((await stdoutOf(request.job_id)).length).toBeLessThan(100);
  }, 30_000);

  it("times out a request that hangs and retries it, losing nothing", async () => {
    const request = await queuedJob("hang", {
      steps: [{ name: "Build", phase: "build", command: numbered(10, 0.05) }],
    });
    bed.bridge.faults.latencyMs = 5_000; // every answer takes longer than the 2 s request timeout
    const run = runJob(request, { ...bed.deps, runnerId: "runner-a" });
    await new Promise((resolve) => setTimeout(resolve, 2_500));
    bed.bridge.faults.latencyMs = 0;
    expect(await run).toMatchObject({ kind: "finished", status: "ready" });
    expect(await stdoutOf(request.job_id)).toEqual(
      Array.from({ length: 10 }, (_, i) => `line ${i + 1}`),
    );
    expect(warnings.some((warning) => /aborted|timeout/i.test(warning))).toBe(true);
  }, 30_000);
});
