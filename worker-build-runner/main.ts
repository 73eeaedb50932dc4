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
const sandbox = config.sandbox === "e2b" ? e2bSandbox({}) : localSandbox();
const notifier =
  config.workerUrl === null
    ? undefined
    : workerNotifier({ workerUrl: config.workerUrl, runnerToken: config.runnerToken });
const runnerId = `runner-${randomUUID()}`;
const runner = createRunnerApp({
  runnerToken: config.runnerToken,
  jobSecretsKey: await importJobSecretsKey(config.jobSecretsKey),
  concurrency: config.concurrency,
  run: (request) =>
    runJob(request, {
      redis,
      sandbox,
      runnerId,
      leaseMs: config.leaseMs,
      ...(notifier ? { notifier } : {}),
    }),
});

const server = serve(
  { fetch: runner.app.fetch, port: config.port, hostname: config.host },
  (info) => {
    console.log(
      `build-log-stream runner ${runnerId}: listening on http://${info.address}:${info.port}, sandbox ${sandbox.name}, ${config.concurrency} jobs at once`,
    );
  },
);

// On SIGTERM (a deploy), stop taking jobs and let running ones finish their logs.
process.on("SIGTERM", () => {
  server.close();
  void runner.idle().then(() => process.exit(0));
});
process.on("SIGINT", () => process.exit(130));
