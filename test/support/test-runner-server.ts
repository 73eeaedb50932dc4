// The runner service (worker-build-runner/server.ts, real code: auth, concurrency, 503, sealed
// values) with a job loop the workerd tests hold and release, so the dispatcher is tested
// against the runner's real answers. Run as its own process; prints `RUNNER_URL=<url>`.
//   JOB_SECRETS_KEY, RUNNER_TOKEN    as the Worker's (the tests' vitest bindings)
// Owners pick the behaviour, so other test files' jobs pass through harmlessly:
//   user_hold_*      the job runs until POST /__test/finish/:id (the tests then report its end)
//   user_down_*      a gateway in front of the runner that is down: 502, the runner never sees it
//   user_wrongkey_*  a runner with another JOB_SECRETS_KEY: 400 sealed_values_invalid
//   anyone else      the job ends at once
// GET /__test/started lists the job ids the runner started, oldest first.
import { randomBytes } from "node:crypto";
import { serve } from "@hono/node-server";
import { Hono } from "hono";
import { importJobSecretsKey } from "../../src/shared/job-secrets.ts";
import { createRunnerApp } from "../../worker-build-runner/server.ts";

const runnerToken = process.env.RUNNER_TOKEN ?? "";
const started: string[] = [];
const held = new Map<string, () => void>();

const runner = createRunnerApp({
  runnerToken,
  jobSecretsKey: await importJobSecretsKey(process.env.JOB_SECRETS_KEY ?? ""),
  concurrency: 3,
  start: async (request) => {
    started.push(request.job_id);
    if (!request.owner.startsWith("user_hold_")) return { run: Promise.resolve() };
    return { run: new Promise<void>((resolve) => held.set(request.job_id, resolve)) };
  },
  logger: { warn: () => undefined, error: console.error },
});
const wrongKeyRunner = createRunnerApp({
  runnerToken,
  jobSecretsKey: await importJobSecretsKey(randomBytes(32).toString("base64")),
  concurrency: 2,
  start: async () => ({ run: Promise.resolve() }),
  logger: { warn: () => undefined, error: console.error },
});

const app = new Hono()
  .post("/jobs", async (c) => {
    const body = await c.req.raw.clone().text();
    const owner = /"owner":"([^"]*)"/.exec(body)?.[1] ?? "";
    if (owner.startsWith("user_down_")) return c.text("bad gateway", 502);
    const target = owner.startsWith("user_wrongkey_") ? wrongKeyRunner : runner;
    return target.app.fetch(c.req.raw);
  })
  .post("/__test/finish/:id", (c) => {
    const finish = held.get(c.req.param("id"));
    held.delete(c.req.param("id"));
    finish?.();
    return c.json({ finished: finish !== undefined });
  })
  .get("/__test/started", (c) => c.json({ started }));

serve({ fetch: app.fetch, port: 0, hostname: "127.0.0.1" }, (info) => {
  console.log(`RUNNER_URL=http://127.0.0.1:${info.port}`);
});
process.on("SIGTERM", () => process.exit(0));
