// The runner container's entry point: an HTTP service the queue consumer hands jobs to.
//   node worker-build-runner/main.ts   (settings from the environment, see README)
import { randomUUID } from "node:crypto";
import { serve } from "@hono/node-server";
import { importJobSecretsKey } from "../src/shared/job-secrets.ts";
import { ConfigError, readRunnerConfig } from "./config.ts";
import { workerNotifier } from "./notifier.ts";
import { createUpstashClient } from "./redis.ts";
import { runJob } from "./run-job.ts";
import { e2bSandbox } from "./sandbox/e2b.ts";
import { localSandbox } from "./sandbox/local.ts";
import { createRunnerApp } from "./server.ts";

let config: ReturnType<typeof readRunnerConfig>;
try {
  config = readRunnerConfig();
} catch (error) {
  if (!(error instanceof ConfigError)) throw error;
  console.error(error.message);
  process.exit(2);
}

const redis = createUpstashClient(config.upstash);
const sandbox =
  config.sandbox === "e2b"
    ? e2bSandbox({
        ...(config.e2b.template === undefined ? {} : { template: config.e2b.template }),
        ...(config.e2b.apiUrl === undefined ? {} : { apiUrl: config.e2b.apiUrl }),
        ...(config.e2b.sandboxUrl === undefined ? {} : { sandboxUrl: config.e2b.sandboxUrl }),
      })
    : localSandbox();
const notifier =
  config.workerUrl === null
    ? undefined
    : workerNotifier({ workerUrl: config.workerUrl, runnerToken: config.runnerToken });
const runnerId = `runner-${randomUUID()}`;
// One per running job: a shutdown that cannot wait stops them, which kills their sandboxes.
const stops = new Set<AbortController>();
const runner = createRunnerApp({
  runnerToken: config.runnerToken,
  jobSecretsKey: await importJobSecretsKey(config.jobSecretsKey),
  concurrency: config.concurrency,
  run: async (request) => {
    const stop = new AbortController();
    stops.add(stop);
    try {
      return await runJob(request, {
        redis,
        sandbox,
        runnerId,
        leaseMs: config.leaseMs,
        signal: stop.signal,
        ...(notifier ? { notifier } : {}),
      });
    } finally {
      stops.delete(stop);
    }
  },
});

const server = serve(
  { fetch: runner.app.fetch, port: config.port, hostname: config.host },
  (info) => {
    console.log(
      `build-log-stream runner ${runnerId}: listening on http://${info.address}:${info.port}, sandbox ${sandbox.name}, ${config.concurrency} jobs at once`,
    );
  },
);

// On SIGTERM (a deploy), stop taking jobs and let running ones finish. On SIGINT, or a second
// SIGTERM, stop them: each kills its sandbox (an E2B sandbox would otherwise live on until its
// timeout) and ends its log, then the runner exits.
let stopping = false;
const stopJobs = (): void => {
  if (stopping) return;
  stopping = true;
  server.close();
  for (const stop of stops) stop.abort(new Error("the runner is shutting down"));
  void runner.idle().then(() => process.exit(130));
};
process.on("SIGTERM", () => {
  if (server.listening) {
    server.close();
    void runner.idle().then(() => process.exit(0));
  } else stopJobs();
});
process.on("SIGINT", stopJobs);
