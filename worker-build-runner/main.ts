// The runner container's entry point: an HTTP service the queue consumer hands jobs to.
//   node worker-build-runner/main.ts   (settings from the environment, see README)

import { randomUUID } from "node:crypto";
import { serve } from "@hono/node-server";
import { importJobSecretsKey } from "../src/shared/job-secrets.ts";
import { log } from "../src/shared/log.ts";
import { ConfigError, type RunnerConfig, readRunnerConfig } from "./config.ts";
import { createJobCancels } from "./job-cancels.ts";
import { workerNotifier } from "./notifier.ts";
import { createUpstashClient } from "./redis.ts";
import { claimJob } from "./run-job.ts";
import { e2bSandbox } from "./sandbox/e2b.ts";
import { localSandbox } from "./sandbox/local.ts";
import type { Sandbox } from "./sandbox/types.ts";
import { SandboxError } from "./sandbox/types.ts";
import { createRunnerApp } from "./server.ts";

// How long a shutdown waits for the killed jobs to write their last lines and status.
const SHUTDOWN_DEADLINE_MS = 15_000;

function fail(message: string): never {
  log.error(message);
  process.exit(2);
}

let config: RunnerConfig;
try {
  config = readRunnerConfig();
} catch (error) {
  if (!(error instanceof ConfigError)) throw error;
  fail(error.message);
}

async function makeSandbox(settings: RunnerConfig): Promise<Sandbox> {
  if (settings.sandbox === "e2b")
    return e2bSandbox({
      apiKey: settings.e2bApiKey ?? "",
      ...(settings.e2b.template === undefined ? {} : { template: settings.e2b.template }),
      ...(settings.e2b.apiUrl === undefined ? {} : { apiUrl: settings.e2b.apiUrl }),
      ...(settings.e2b.sandboxUrl === undefined ? {} : { sandboxUrl: settings.e2b.sandboxUrl }),
    });
  const sandbox = localSandbox({
    isolation: settings.sandbox === "local-unsafe" ? "none" : "bwrap",
    limits: settings.sandboxLimits,
    passEnv: settings.sandboxPassEnv,
  });
  if (!sandbox.isolated) {
    const banner = "!".repeat(78);
    log.warn(
      `${banner}\n! SANDBOX=local-unsafe: builds run as this runner's user, unisolated. They can read\n! its environment and files, signal it and reach every port of this machine.\n! Development only; never let anyone else submit jobs to this runner.\n${banner}`,
    );
    return sandbox;
  }
  // One throwaway session at start: a machine where bubblewrap cannot make namespaces fails
  // here, with bwrap's own words, rather than at the first user's job.
  const probe = await sandbox.create({ timeoutMs: 30_000 });
  try {
    const result = await probe.run("true", {
      timeoutMs: 20_000,
      onStdout: () => undefined,
      onStderr: () => undefined,
    });
    if (result.exitCode !== 0)
      throw new SandboxError(
        "sandbox_create_failed",
        `local sandbox: a probe command exited ${result.exitCode}`,
      );
  } finally {
    await probe.kill();
  }
  return sandbox;
}

let sandbox: Sandbox;
try {
  sandbox = await makeSandbox(config);
} catch (error) {
  if (!(error instanceof SandboxError)) throw error;
  fail(`runner: ${error.message}`);
}

const redis = createUpstashClient(config.upstash);
const notifier =
  config.workerUrl === null
    ? undefined
    : workerNotifier({ workerUrl: config.workerUrl, runnerToken: config.runnerToken });
const runnerId = `runner-${randomUUID()}`;
// One per running job: stopping it kills the job's sandbox and ends its log.
const stops = new Set<AbortController>();
const cancels = createJobCancels();
const runner = createRunnerApp({
  cancels,
  runnerToken: config.runnerToken,
  jobSecretsKey: await importJobSecretsKey(config.jobSecretsKey),
  concurrency: config.concurrency,
  logger: log,
  start: async (request) => {
    const stop = new AbortController();
    const claimed = await claimJob(request, {
      redis,
      sandbox,
      runnerId,
      leaseMs: config.leaseMs,
      liveCopy: config.liveCopy,
      signal: stop.signal,
      cancels,
      logger: log,
      ...(notifier ? { notifier } : {}),
    });
    if (claimed.kind !== "claimed") return { skipped: claimed.reason };
    stops.add(stop);
    return { run: claimed.run().finally(() => stops.delete(stop)) };
  },
});

const server = serve(
  { fetch: runner.app.fetch, port: config.port, hostname: config.host },
  (info) => {
    log.info(
      `build-log-stream runner ${runnerId}: listening on http://${info.address}:${info.port}, sandbox ${sandbox.name}, ${config.concurrency} jobs at once`,
    );
  },
);

// SIGINT (Ctrl-C), and SIGTERM with the local sandbox: stop taking jobs, stop every running one
// (each kills its sandbox and ends its log as failed) and kill every local session, which ends
// all of its processes and removes its workdir; then exit. SIGTERM with E2B (a deploy) lets
// E2B builds finish their logs first; a second signal stops them. Local builds die with the
// runner whatever happens: their init is bwrap's, which --die-with-parent ends.
let draining = false;
let stopping = false;
const stopJobs = (exitCode: number): void => {
  if (stopping) return;
  stopping = true;
  server.close();
  setTimeout(() => process.exit(exitCode === 0 ? 1 : exitCode), SHUTDOWN_DEADLINE_MS).unref();
  for (const stop of stops) stop.abort(new Error("the runner is shutting down"));
  void (async () => {
    await sandbox.shutdown?.();
    await runner.idle();
    process.exit(exitCode);
  })();
};
process.on("SIGTERM", () => {
  if (sandbox.shutdown === undefined && !draining) {
    draining = true;
    server.close();
    void runner.idle().then(() => process.exit(0));
  } else stopJobs(0);
});
process.on("SIGINT", () => stopJobs(130));
