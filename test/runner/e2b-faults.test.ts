import type { Redis } from "@upstash/redis";
import { afterAll, afterEach, beforeAll, describe, expect, inject, it, vi } from "vitest";
import { decodeStreamReply } from "../../src/shared/entry.ts";
import { parseJobRecord } from "../../src/shared/job.ts";
import type { JobSpec, RunRequest } from "../../src/shared/job-spec.ts";
import { jobKey, logStreamKey } from "../../src/shared/keys.ts";
import type { E2BLocalServer } from "../../tools/e2b-local/server.ts";
import { startE2BLocalServer } from "../../tools/e2b-local/server.ts";
import { startUpstashBridge, type UpstashBridge } from "../../tools/upstash-bridge/bridge.ts";
import { createUpstashClient } from "../../worker-build-runner/redis.ts";
import { jobDeadlineMs, runJob } from "../../worker-build-runner/run-job.ts";
import { e2bSandbox } from "../../worker-build-runner/sandbox/e2b.ts";
import { localSandbox } from "../../worker-build-runner/sandbox/local.ts";
import type { DropProxy } from "../support/drop-proxy.ts";
import { startDropProxy } from "../support/drop-proxy.ts";
import { queuedJob as createQueuedJob } from "../support/run-request.ts";

// Jobs run for real through the E2B adapter, the unchanged SDK and tools/e2b-local in front of
// the local sandbox, lines into redis-server behind the Upstash bridge. Each fault must end the
// job with a clear status and a system line, hang nothing, and lose no line printed before it.
const API_KEY = "e2b_local_faults_key";
let bridge: UpstashBridge;
let redis: Redis;
let server: E2BLocalServer;
const warnings: string[] = [];
const logger = { warn: (message: string) => void warnings.push(message) };

beforeAll(async () => {
  bridge = await startUpstashBridge({ redisUrl: inject("redisUrl"), token: "e2b-faults-test" });
  redis = createUpstashClient({ url: bridge.url, token: bridge.token });
  server = await startE2BLocalServer({ sandbox: localSandbox(), apiKey: API_KEY });
});
afterEach(() => {
  server.faults.reset();
});
afterAll(async () => {
  await server.close();
  await bridge.close();
});

const adapter = (urls: { apiUrl?: string; sandboxUrl?: string } = {}) =>
  e2bSandbox({
    apiKey: API_KEY,
    apiUrl: urls.apiUrl ?? server.url,
    sandboxUrl: urls.sandboxUrl ?? server.url,
    createRetryDelaysMs: [50, 100],
  });

const queuedJob = (label: string, spec: Partial<JobSpec>): Promise<RunRequest> =>
  createQueuedJob(redis, "user_e2b_faults", label, spec);

async function logOf(jobId: string) {
  const entries = decodeStreamReply(await redis.xrange(logStreamKey(jobId), "-", "+"));
  return {
    lines: entries.flatMap((entry) => entry.lines).map(({ source, text }) => ({ source, text })),
    end: entries.at(-1)?.end,
  };
}

const statusOf = async (jobId: string) =>
  parseJobRecord((await redis.get<string>(jobKey(jobId))) ?? "null").status;

/** Resolves once the job's log in Redis holds a line with `text`. */
async function lineSeen(jobId: string, text: string): Promise<void> {
  await vi.waitFor(
    async () => expect((await logOf(jobId)).lines.map((line) => line.text)).toContain(text),
    { timeout: 20_000, interval: 50 },
  );
}

/** The one sandbox a job runs in, as the server sees it. */
function onlySandbox() {
  const [hosted, ...others] = server.runningSandboxes();
  expect(others).toHaveLength(0);
  if (hosted === undefined) return expect.unreachable("no sandbox is running");
  return hosted;
}

const echoStep = { name: "Building", phase: "build", command: "echo built" } as const;

describe("the E2B API refusing to create a sandbox", () => {
  it.each([
    [429, "Rate limit exceeded"],
    [500, "500: Internal server error"],
    [503, "Service temporarily unavailable"],
  ])(
    "fails the job with a system line naming a lasting %i, after retrying",
    async (status, says) => {
      server.faults.failCreate(3, status);
      const request = await queuedJob(`create-${status}`, { steps: [echoStep] });
      const outcome = await runJob(request, { redis, sandbox: adapter(), runnerId: "r", logger });
      expect(outcome).toMatchObject({ kind: "finished", status: "failed" });
      const log = await logOf(request.job_id);
      const last = log.lines.at(-1);
      expect(last?.source).toBe("system");
      expect(last?.text).toContain("The build could not run: e2b sandbox: cannot create a sandbox");
      expect(last?.text).toContain("(3 attempts)");
      expect(last?.text).toContain(says);
      expect(log.end).toBe("failed");
      expect(await statusOf(request.job_id)).toBe("failed");
      expect(server.runningSandboxes()).toHaveLength(0);
    },
  );

  it.each([429, 502, 503])("rides out a passing %i and builds", async (status) => {
    server.faults.failCreate(2, status);
    const request = await queuedJob(`create-retry-${status}`, { steps: [echoStep] });
    const outcome = await runJob(request, { redis, sandbox: adapter(), runnerId: "r", logger });
    expect(outcome).toMatchObject({ status: "ready" });
    expect((await logOf(request.job_id)).lines.map((line) => line.text)).toContain("built");
  });

  it("lets the SDK wait out a 429 that says Retry-After", async () => {
    server.faults.failCreate(1, 429, { retryAfterSeconds: 1 });
    const request = await queuedJob("create-retry-after", { steps: [echoStep] });
    const sandbox = e2bSandbox({
      apiKey: API_KEY,
      apiUrl: server.url,
      sandboxUrl: server.url,
      createRetryDelaysMs: [], // only the SDK's own retry is left
    });
    const outcome = await runJob(request, { redis, sandbox, runnerId: "r", logger });
    expect(outcome).toMatchObject({ status: "ready" });
  });
});

describe("the envd stream cut mid-command by the network", () => {
  let proxy: DropProxy;
  beforeAll(async () => {
    proxy = await startDropProxy(
      server.url,
      (method, path) => /^\/process\.Process\/(Start|Connect)$/.test(path) && method === "POST",
    );
  });
  afterAll(async () => {
    await proxy.close();
  });

  it("follows the command again, keeps every line printed before the cut and says output may be missing", async () => {
    const request = await queuedJob("stream-cut", {
      steps: [
        {
          name: "Building",
          phase: "build",
          command:
            "echo 'line 1'; echo 'line 2' >&2; while [ ! -f release ]; do sleep 0.05; done; echo 'line 3'",
        },
      ],
    });
    const job = runJob(request, {
      redis,
      sandbox: adapter({ sandboxUrl: proxy.url }),
      runnerId: "r",
      logger,
    });
    await lineSeen(request.job_id, "line 2");
    const startsBefore = proxy.streamRequests.length;
    expect(proxy.dropStreams()).toBeGreaterThan(0);
    // The adapter follows the command again through envd's Connect.
    await vi.waitFor(
      () => {
        const resumed = proxy.streamRequests.slice(startsBefore);
        expect(resumed.map((stream) => stream.path)).toContain("/process.Process/Connect");
      },
      { timeout: 20_000, interval: 50 },
    );
    await onlySandbox().session.writeFile(`${onlySandbox().home}/app/release`, "");
    expect(await job).toMatchObject({ status: "ready", exitCode: 0 });

    const log = await logOf(request.job_id);
    const texts = log.lines.map((line) => line.text);
    const notice = texts.findIndex((text) =>
      text.startsWith("The connection to the sandbox dropped"),
    );
    expect(notice).toBeGreaterThan(texts.indexOf("line 2"));
    expect(log.lines[notice]?.source).toBe("system");
    expect(texts[notice]).toContain("output printed meanwhile may be missing");
    expect(texts.slice(0, notice)).toEqual(expect.arrayContaining(["line 1", "line 2"]));
    expect(texts.indexOf("line 3")).toBeGreaterThan(notice);
    expect(log.end).toBe("ready");
    expect(server.runningSandboxes()).toHaveLength(0);
  });
});

describe("the sandbox ending under the build", () => {
  it("fails the job with a system line when the sandbox's own timeout passes mid-build", async () => {
    const request = await queuedJob("own-timeout", {
      steps: [
        { name: "Building", phase: "build", command: "echo started; sleep 60; echo never" },
        { name: "Never", phase: "build", command: "echo never either" },
      ],
    });
    const job = runJob(request, { redis, sandbox: adapter(), runnerId: "r", logger });
    await lineSeen(request.job_id, "started");
    // Shortened through E2B's API, as any client of the account could.
    const shortened = await fetch(`${server.url}/sandboxes/${onlySandbox().id}/timeout`, {
      method: "POST",
      headers: { "x-api-key": API_KEY, "content-type": "application/json" },
      body: JSON.stringify({ timeout: 1 }),
    });
    expect(shortened.status).toBe(204);
    expect(await job).toMatchObject({ status: "failed" });

    const log = await logOf(request.job_id);
    const texts = log.lines.map((line) => line.text);
    expect(texts).toContain("started");
    expect(texts).not.toContain("never");
    expect(texts).not.toContain("never either");
    const last = log.lines.at(-1);
    expect(last?.source).toBe("system");
    expect(last?.text).toMatch(/^The build could not run: run: the sandbox \S+ ended while/);
    expect(last?.text).toContain("killed, or its timeout passed");
    expect(log.end).toBe("failed");
    expect(await statusOf(request.job_id)).toBe("failed");
  });

  it("asks for a sandbox that lives as long as the job may, and kills it at the job's end", async () => {
    const spec = {
      steps: [
        { ...echoStep, timeout_ms: 120_000 },
        { name: "Testing", phase: "test", command: "sleep 0.3", timeout_ms: 60_000 },
      ],
    } satisfies Partial<JobSpec>;
    const request = await queuedJob("lifetime", spec);
    const job = runJob(request, { redis, sandbox: adapter(), runnerId: "r", logger });
    await lineSeen(request.job_id, "built");
    const hosted = onlySandbox();
    const lifetime = hosted.endAt.getTime() - hosted.startedAt.getTime();
    expect(jobDeadlineMs(spec)).toBe(5 * 60_000 + 180_000);
    expect(Math.abs(lifetime - jobDeadlineMs(spec))).toBeLessThan(5_000);
    expect(await job).toMatchObject({ status: "ready" });
    expect(server.runningSandboxes()).toHaveLength(0);
  });
});

describe("the sandbox unreachable at the job's end", () => {
  it("says in the log that the sandbox could not be stopped, and keeps the build's status", async () => {
    const apiProxy = await startDropProxy(server.url);
    const request = await queuedJob("kill-fails", {
      steps: [
        {
          name: "Building",
          phase: "build",
          command: "echo waiting; while [ ! -f release ]; do sleep 0.05; done; echo released",
        },
      ],
    });
    const job = runJob(request, {
      redis,
      sandbox: adapter({ apiUrl: apiProxy.url }),
      runnerId: "r",
      logger,
    });
    await lineSeen(request.job_id, "waiting");
    const hosted = onlySandbox();
    await apiProxy.close(); // the API is gone: connections refused from now on
    await hosted.session.writeFile(`${hosted.home}/app/release`, "");
    expect(await job).toMatchObject({ status: "ready", exitCode: 0 });

    const log = await logOf(request.job_id);
    const texts = log.lines.map((line) => line.text);
    expect(texts).toContain("released");
    const last = log.lines.at(-1);
    expect(last?.source).toBe("system");
    expect(last?.text).toMatch(
      new RegExp(`^The sandbox ${hosted.id} could not be stopped \\(e2b sandbox: cannot kill`),
    );
    expect(last?.text).toContain("it ends by itself within 20 minutes of the job's start");
    expect(log.end).toBe("ready");
    expect(await statusOf(request.job_id)).toBe("ready");
    // It does live on, until its own timeout; here the test ends it.
    expect(hosted.running).toBe(true);
    await hosted.kill("killed");
  });
});

describe("a job stopped while it runs (the runner shutting down)", () => {
  it("kills the sandbox at once and ends the log saying why", async () => {
    const request = await queuedJob("stopped", {
      steps: [{ name: "Building", phase: "build", command: "echo started; sleep 60; echo never" }],
    });
    const stop = new AbortController();
    const job = runJob(request, {
      redis,
      sandbox: adapter(),
      runnerId: "r",
      logger,
      signal: stop.signal,
    });
    await lineSeen(request.job_id, "started");
    stop.abort(new Error("the runner is shutting down"));
    expect(await job).toMatchObject({ status: "failed" });
    expect(server.runningSandboxes()).toHaveLength(0);
    const log = await logOf(request.job_id);
    expect(log.lines.map((line) => line.text)).not.toContain("never");
    expect(log.lines.at(-1)).toEqual({
      source: "system",
      text: "The build was stopped: the runner is shutting down",
    });
    expect(log.end).toBe("failed");
  });
});
