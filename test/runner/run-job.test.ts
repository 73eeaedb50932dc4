import { describe, expect, it } from "vitest";
import {
  leaseKey,
  logStreamKey,
  RUNNING_JOBS_KEY,
  UNARCHIVED_JOBS_KEY,
} from "../../src/shared/keys.ts";
import { runJob, type WorkerNotifier } from "../../worker-build-runner/run-job.ts";
import { runJobBed } from "../support/run-job-bed.ts";

// A job run for real: child processes in a temporary directory, lines through the sanitizer
// and the writer into redis-server behind the Upstash bridge, status in the job record.
const bed = runJobBed({ token: "run-job-test", owner: "user_runner_test" });
const { queuedJob, entriesOf, jobOf } = bed;

function recordingNotifier(): WorkerNotifier & { calls: string[] } {
  const calls: string[] = [];
  return {
    calls,
    wake: async (id) => void calls.push(`wake ${id}`),
    push: async (id, push) => {
      calls.push(`push ${id} ${push.entries.length}`);
      return { viewers: 0 };
    },
    finished: async (id) => void calls.push(`finished ${id}`),
    archive: async (id) => {
      calls.push(`archive ${id}`);
      return { through: null, complete: true, more: false, busy: false };
    },
  };
}

describe("runJob", () => {
  it("runs the steps, streams their lines with stage lines, and ends ready", async () => {
    const request = await queuedJob("ready", {
      files: {
        "package.json": '{"name":"demo","version":"1.0.0"}',
        "src/build.js": "console.log('built', require('../package.json').name)",
      },
      steps: [
        {
          name: "Installing dependencies",
          phase: "install",
          command: "echo installing; echo 'warn: deprecated' >&2",
        },
        { name: "Building", phase: "build", command: "node src/build.js" },
      ],
    });
    const notifier = recordingNotifier();
    const outcome = await runJob(request, { ...bed.deps, runnerId: "test-runner", notifier });
    expect(outcome).toEqual({ kind: "finished", status: "ready", exitCode: 0 });
    const entries = await entriesOf(request.job_id);
    const lines = entries
      .flatMap((entry) => entry.lines)
      .map(({ source, phase, text }) => ({ source, phase, text }));
    expect(lines).toEqual([
      { source: "system", phase: "install", text: "--- Preparing the sandbox ---" },
      { source: "system", phase: "install", text: "--- Installing dependencies ---" },
      { source: "stdout", phase: "install", text: "installing" },
      { source: "stderr", phase: "install", text: "warn: deprecated" },
      {
        source: "system",
        phase: "install",
        text: expect.stringMatching(/^Installing dependencies succeeded in \d+\.\d s$/),
      },
      { source: "system", phase: "build", text: "--- Building ---" },
      { source: "stdout", phase: "build", text: "built demo" },
      {
        source: "system",
        phase: "build",
        text: expect.stringMatching(/^Building succeeded in \d+\.\d s$/),
      },
      { source: "system", phase: "build", text: "--- Build finished ---" },
    ]);
    expect(entries.at(-1)?.end).toBe("ready");
    const job = await jobOf(request.job_id);
    expect(job).toMatchObject({ status: "ready", exit_code: 0 });
    expect(job.started_at).not.toBeNull();
    expect(job.finished_at).not.toBeNull();
    expect(await bed.redis.exists(leaseKey(request.job_id))).toBe(0);
    expect(await bed.redis.zscore(RUNNING_JOBS_KEY, request.job_id)).toBeNull();
    expect(await bed.redis.zscore(UNARCHIVED_JOBS_KEY, request.job_id)).not.toBeNull();
    expect(notifier.calls).toContain(`finished ${request.job_id}`);
  });

  it("marks each step's start and end in its lines and lists the steps in the job record", async () => {
    const request = await queuedJob("steps", {
      steps: [
        { name: "Installing", phase: "install", command: "echo one; echo two" },
        { name: "Building", phase: "build", command: "echo compiling; exit 3" },
        { name: "Never", phase: "build", command: "echo should not run" },
      ],
    });
    await runJob(request, { ...bed.deps, runnerId: "test-runner" });
    const lines = (await entriesOf(request.job_id)).flatMap((entry) => entry.lines);
    const marked = lines.filter((line) => line.step !== undefined);
    expect(marked.map(({ text, step, n }) => ({ text, step, n }))).toEqual([
      { text: "--- Installing ---", step: { i: 0, name: "Installing", event: "start" }, n: 1 },
      {
        text: expect.stringMatching(/^Installing succeeded in /),
        step: {
          i: 0,
          name: "Installing",
          event: "end",
          status: "succeeded",
          exit: 0,
          ms: expect.any(Number),
        },
        n: 4,
      },
      { text: "--- Building ---", step: { i: 1, name: "Building", event: "start" }, n: 5 },
      {
        text: "Building failed with exit code 3",
        step: {
          i: 1,
          name: "Building",
          event: "end",
          status: "failed",
          exit: 3,
          ms: expect.any(Number),
        },
        n: 7,
      },
    ]);
    const job = await jobOf(request.job_id);
    expect(job.steps).toEqual([
      {
        index: 0,
        name: "Installing",
        phase: "install",
        status: "succeeded",
        started_at: expect.any(String),
        finished_at: expect.any(String),
        duration_ms: marked[1]?.step?.event === "end" ? marked[1].step.ms : -1,
        exit_code: 0,
        first_line: 1,
        lines: 4,
      },
      {
        index: 1,
        name: "Building",
        phase: "build",
        status: "failed",
        started_at: expect.any(String),
        finished_at: expect.any(String),
        duration_ms: expect.any(Number),
        exit_code: 3,
        first_line: 5,
        lines: 3,
      },
    ]);
  });

  it("a step's name is masked in its marks and the record as its line is", async () => {
    const secret = "step-name-secret-value-8c1e";
    const request = await queuedJob("step-secret", {
      secrets: { DEPLOY_TOKEN: secret },
      steps: [{ name: `Deploy with ${secret}`, phase: "build", command: "true" }],
    });
    await runJob(request, { ...bed.deps, runnerId: "test-runner" });
    const raw = JSON.stringify(await bed.redis.xrange(logStreamKey(request.job_id), "-", "+"));
    expect(raw).toContain('name\\":\\"Deploy with [REDACTED]');
    expect(raw).not.toContain(secret);
    expect((await jobOf(request.job_id)).steps?.[0]?.name).toBe("Deploy with [REDACTED]");
  });

  it("fails the job with the command's exit code in a system line and stops there", async () => {
    const request = await queuedJob("failed", {
      steps: [
        { name: "Building", phase: "build", command: "echo compiling; exit 3" },
        { name: "Never", phase: "build", command: "echo should not run" },
      ],
    });
    const outcome = await runJob(request, { ...bed.deps, runnerId: "test-runner" });
    expect(outcome).toEqual({ kind: "finished", status: "failed", exitCode: 3 });
    const entries = await entriesOf(request.job_id);
    const texts = entries.flatMap((entry) => entry.lines).map((line) => line.text);
    expect(texts).toContain("Building failed with exit code 3");
    expect(texts).not.toContain("should not run");
    expect(entries.at(-1)?.end).toBe("failed");
    expect(await jobOf(request.job_id)).toMatchObject({ status: "failed", exit_code: 3 });
  });

  it("masks the job's secrets, plain and base64, before the first command runs", async () => {
    const secret = "sup3r-s3cret-database-password";
    const request = await queuedJob("secrets", {
      env: { NODE_ENV: "production", STRIPE_API_KEY: "stripe-test-key-value-1234" },
      secrets: { DB_PASSWORD: secret, SHORT: "abc" },
      steps: [
        {
          name: "Leaky build",
          phase: "build",
          command:
            'echo "pw=$DB_PASSWORD"; printf %s "$DB_PASSWORD" | base64; echo "stripe $STRIPE_API_KEY"; echo "env $NODE_ENV"',
        },
      ],
    });
    await runJob(request, { ...bed.deps, runnerId: "test-runner" });
    const raw = JSON.stringify(await bed.redis.xrange(logStreamKey(request.job_id), "-", "+"));
    expect(raw).not.toContain(secret);
    expect(raw).not.toContain(Buffer.from(secret).toString("base64").slice(0, 20));
    expect(raw).not.toContain("stripe-test-key-value-1234");
    const texts = (await entriesOf(request.job_id))
      .flatMap((entry) => entry.lines)
      .map((line) => line.text);
    expect(texts).toContain("pw=[REDACTED]");
    expect(texts).toContain("env production");
    expect(texts.some((text) => /value of SHORT is not masked/.test(text))).toBe(true);
    expect(texts.join("\n")).not.toContain("abc\n");
  });

  it("does not pass the runner's own secrets into the build", async () => {
    process.env.UPSTASH_REDIS_REST_TOKEN_PROBE = "runner-private-token-value";
    try {
      const request = await queuedJob("isolation", {
        steps: [
          {
            name: "Env",
            phase: "build",
            command: 'echo "probe=${UPSTASH_REDIS_REST_TOKEN_PROBE:-absent}"',
          },
        ],
      });
      await runJob(request, { ...bed.deps, runnerId: "test-runner" });
      const texts = (await entriesOf(request.job_id))
        .flatMap((entry) => entry.lines)
        .map((line) => line.text);
      expect(texts).toContain("probe=absent");
    } finally {
      delete process.env.UPSTASH_REDIS_REST_TOKEN_PROBE;
    }
  });

  it("skips a job another runner holds, and a job that already ran", async () => {
    const request = await queuedJob("skip", {
      steps: [{ name: "Build", phase: "build", command: "echo once" }],
    });
    await bed.redis.set(leaseKey(request.job_id), "other-runner", { px: 30_000 });
    expect(await runJob(request, { ...bed.deps, runnerId: "test-runner" })).toMatchObject({
      kind: "skipped",
    });
    await bed.redis.del(leaseKey(request.job_id));
    expect(await runJob(request, { ...bed.deps, runnerId: "test-runner" })).toMatchObject({
      kind: "finished",
      status: "ready",
    });
    expect(await runJob(request, { ...bed.deps, runnerId: "test-runner" })).toMatchObject({
      kind: "skipped",
    });
    const texts = (await entriesOf(request.job_id))
      .flatMap((entry) => entry.lines)
      .map((line) => line.text);
    expect(texts.filter((text) => text === "once")).toHaveLength(1);
  });

  it("starts a dev server in the background and is ready when it says so", async () => {
    const request = await queuedJob("dev-server", {
      steps: [
        {
          name: "Starting the dev server",
          phase: "dev_server",
          command: "echo booting; sleep 0.2; echo 'ready on http://localhost:5173'; sleep 30",
          background: true,
          ready_text: "ready on",
        },
      ],
    });
    const outcome = await runJob(request, { ...bed.deps, runnerId: "test-runner" });
    expect(outcome).toMatchObject({ kind: "finished", status: "ready" });
    const texts = (await entriesOf(request.job_id))
      .flatMap((entry) => entry.lines)
      .map((line) => line.text);
    expect(texts).toEqual(expect.arrayContaining(["booting", "ready on http://localhost:5173"]));
  });

  it("fails a dev server that exits before it is ready, or never says so", async () => {
    const exits = await queuedJob("dev-exits", {
      steps: [
        {
          name: "Dev server",
          phase: "dev_server",
          command: "echo crashing; exit 7",
          background: true,
          ready_text: "ready",
        },
      ],
    });
    expect(await runJob(exits, { ...bed.deps, runnerId: "test-runner" })).toMatchObject({
      status: "failed",
      exitCode: 7,
    });
    const silent = await queuedJob("dev-silent", {
      steps: [
        {
          name: "Dev server",
          phase: "dev_server",
          command: "sleep 30",
          background: true,
          ready_text: "ready",
          startup_ms: 300,
        },
      ],
    });
    expect(await runJob(silent, { ...bed.deps, runnerId: "test-runner" })).toMatchObject({
      status: "failed",
    });
    const texts = (await entriesOf(silent.job_id))
      .flatMap((entry) => entry.lines)
      .map((line) => line.text);
    expect(texts).toContain('Dev server did not print "ready" within 300 ms');
  });

  it("fails a job whose sandbox cannot be created, saying why", async () => {
    const request = await queuedJob("no-sandbox", {
      steps: [{ name: "Build", phase: "build", command: "true" }],
    });
    const broken = { name: "broken", create: async () => Promise.reject(new Error("no capacity")) };
    const outcome = await runJob(request, {
      ...bed.deps,
      sandbox: broken,
      runnerId: "test-runner",
    });
    expect(outcome).toMatchObject({ kind: "finished", status: "failed" });
    const texts = (await entriesOf(request.job_id))
      .flatMap((entry) => entry.lines)
      .map((line) => line.text);
    expect(texts).toContain("The build could not run: no capacity");
  });
});
