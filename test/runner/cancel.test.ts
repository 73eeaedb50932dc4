import { execFileSync } from "node:child_process";
import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import type { LogLine } from "../../src/shared/entry.ts";
import type { JobRecord } from "../../src/shared/job.ts";
import type { JobSpec } from "../../src/shared/job-spec.ts";
import { cancelKey } from "../../src/shared/keys.ts";
import { type Stack, startStack } from "../../tools/dev/stack.ts";
import { createUpstashClient } from "../../worker-build-runner/redis.ts";
import { type StackUser, stackUser } from "../support/stack-client.ts";

// Cancel through the whole stack, with each sandbox: POST /api/jobs/:id/cancel, the runner
// stopping the build's processes, the log's last line saying who cancelled, `cancelled` as the
// status and in viewers' `done`, the archive written; a queued job that never starts.
const OWNER = "user_canceller";

describe.each(["local", "e2b-local"] as const)("cancel with the %s sandbox", (sandbox) => {
  let stack: Stack;
  let owner: StackUser;

  beforeAll(async () => {
    stack = await startStack({
      runnerOutput: "ignore",
      sandbox,
      // A heartbeat every second: the stored cancel is seen that soon.
      runnerLeaseMs: 3_000,
      workerVars: { SSE_HEARTBEAT_MS: "1000" },
    });
    owner = stackUser(stack, OWNER);
  }, 120_000);

  afterAll(async () => {
    await stack?.stop();
  }, 60_000);

  const cancel = (jobId: string, as = owner) =>
    as.api(`/api/jobs/${jobId}/cancel`, { method: "POST" });

  async function record(jobId: string): Promise<JobRecord> {
    const response = await owner.api(`/api/jobs/${jobId}`);
    expect(response.status).toBe(200);
    return (await response.json()) as JobRecord;
  }

  async function history(jobId: string): Promise<string[]> {
    const response = await owner.api(`/api/jobs/${jobId}/logs?limit=500`);
    expect(response.status).toBe(200);
    const page = (await response.json()) as { lines: LogLine[] };
    return page.lines.map((line) => line.text);
  }

  // A build that runs until it is stopped, with a mark in its command line to find its
  // processes by from the host (the local sandbox's PID namespace is visible from outside).
  function endless(mark: string): Partial<JobSpec> {
    return {
      steps: [
        {
          name: "Building",
          phase: "build",
          command: `sh -c 'echo started; i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.2; done' ${mark}`,
        },
      ],
    };
  }

  const processesWith = (mark: string): number => {
    try {
      return execFileSync("pgrep", ["-f", mark], { encoding: "utf8" }).trim().split("\n").length;
    } catch {
      return 0; // pgrep exits 1 when nothing matches
    }
  };

  async function started(stream: { lines: LogLine[] }): Promise<void> {
    await vi.waitFor(() => expect(stream.lines.map((line) => line.text)).toContain("started"), {
      timeout: 60_000,
      interval: 100,
    });
  }

  it("stops a running build, says who cancelled it, ends it cancelled and archives it", async () => {
    const mark = `cancel-mark-${randomUUID()}`;
    const jobId = await owner.createJob(endless(mark));
    const stream = owner.follow(jobId);
    await started(stream);
    expect(processesWith(mark)).toBeGreaterThan(0);
    if (sandbox === "e2b-local") expect(stack.e2bLocal?.runningSandboxes()).toHaveLength(1);

    // Anyone else: the same 404 as for a job that does not exist.
    const stranger = await cancel(jobId, stackUser(stack, "user_stranger"));
    expect(stranger.status).toBe(404);
    expect(await stranger.json()).toMatchObject({ error: { code: "job_not_found" } });

    const response = await cancel(jobId);
    expect(response.status).toBe(202);
    // While it runs, the record lists the step it is in (saved when the step started).
    expect(await response.json()).toMatchObject({
      id: jobId,
      status: "running",
      steps: [{ index: 0, status: "running", finished_at: null, first_line: expect.any(Number) }],
    });

    expect(await stream.done).toBe("cancelled");
    expect(stream.lines.at(-1)).toMatchObject({
      source: "system",
      text: `The build was cancelled by ${OWNER}.`,
      step: { i: 0, event: "end", status: "cancelled" },
    });
    expect(processesWith(mark)).toBe(0);
    if (sandbox === "e2b-local") expect(stack.e2bLocal?.runningSandboxes()).toHaveLength(0);
    expect(await record(jobId)).toMatchObject({
      status: "cancelled",
      steps: [{ status: "cancelled", duration_ms: expect.any(Number) }],
    });
    expect((await history(jobId)).at(-1)).toBe(`The build was cancelled by ${OWNER}.`);
    await vi.waitFor(async () => expect((await record(jobId)).archived_at).toBeTruthy(), {
      timeout: 30_000,
      interval: 250,
    });

    // Once ended, a cancel is refused and changes nothing.
    const again = await cancel(jobId);
    expect(again.status).toBe(409);
    expect(await again.json()).toMatchObject({ error: { code: "job_ended" } });
    expect(await record(jobId)).toMatchObject({ status: "cancelled" });
  });

  it("cancels a queued job, which never starts", async () => {
    // The owner may have two jobs running: the third waits in the dispatcher, queued.
    const marks = [0, 1].map(() => `cancel-mark-${randomUUID()}`);
    const runningJobs: string[] = [];
    const streams = [];
    for (const mark of marks) {
      const jobId = await owner.createJob(endless(mark));
      runningJobs.push(jobId);
      const stream = owner.follow(jobId);
      streams.push(stream);
      await started(stream);
    }
    const queued = await owner.createJob({
      steps: [{ name: "Building", phase: "build", command: "echo should-never-run" }],
    });
    const queuedStream = owner.follow(queued);
    expect(await record(queued)).toMatchObject({ status: "queued" });

    const response = await cancel(queued);
    expect(response.status).toBe(200);
    expect(await response.json()).toMatchObject({ id: queued, status: "cancelled" });
    expect(await queuedStream.done).toBe("cancelled");
    expect(queuedStream.lines.map((line) => line.text)).toEqual([
      `Cancelled by ${OWNER} before it started.`,
    ]);

    // Free the owner's slots: were the cancelled job still in the dispatcher, it would start now.
    for (const jobId of runningJobs) expect((await cancel(jobId)).status).toBe(202);
    for (const stream of streams) expect(await stream.done).toBe("cancelled");
    const next = await owner.createJob({
      steps: [{ name: "Building", phase: "build", command: "echo after" }],
    });
    expect(await owner.follow(next).done).toBe("ready");
    expect(await record(queued)).toMatchObject({ status: "cancelled", started_at: null });
    expect(await history(queued)).toEqual([`Cancelled by ${OWNER} before it started.`]);
  });

  it("stops the build from its heartbeat when the runner never got the direct call", async () => {
    const mark = `cancel-mark-${randomUUID()}`;
    const jobId = await owner.createJob(endless(mark));
    const stream = owner.follow(jobId);
    await started(stream);
    // What the Worker stores before it calls the runner, as if that call were lost.
    const redis = createUpstashClient({ url: stack.bridge.url, token: stack.bridge.token });
    await redis.set(
      cancelKey(jobId),
      JSON.stringify({ by: "user_someone", at: new Date().toISOString() }),
    );
    expect(await stream.done).toBe("cancelled");
    expect(stream.lines.at(-1)?.text).toBe("The build was cancelled by user_someone.");
    expect(processesWith(mark)).toBe(0);
  });
});
