// npm start: the whole system on this machine with embedded defaults (tools/dev/stack.ts),
// then a demo job that builds a small real project, its live log printed as it streams over
// SSE, and what a person needs to look for themselves. Ctrl-C stops everything it started.
import { readdirSync, readFileSync } from "node:fs";
import { EventSource } from "eventsource";
import type { LogLine } from "../../src/shared/entry.ts";
import type { JobSpec } from "../../src/shared/job-spec.ts";
import { REDIS_INSTALL_COMMAND } from "../upstash-bridge/redis-server.ts";
import { devSignInUrl, type Stack, startStack } from "./stack.ts";

const DEMO_DIR = new URL("./demo-app/", import.meta.url);
const DEV_USER = "user_dev";

function demoSpec(): JobSpec {
  const files = Object.fromEntries(
    readdirSync(DEMO_DIR).map((name) => [name, readFileSync(new URL(name, DEMO_DIR), "utf8")]),
  );
  return {
    files,
    env: { NODE_ENV: "production" },
    secrets: { DEPLOY_TOKEN: `dpl_${crypto.randomUUID().replaceAll("-", "")}` },
    steps: [
      {
        name: "Installing dependencies",
        phase: "install",
        command: "npm install --no-audit --no-fund",
      },
      { name: "Building", phase: "build", command: "npm run build" },
      {
        name: "Starting the dev server",
        phase: "dev_server",
        command: "npm start",
        background: true,
        ready_text: "Listening on",
      },
    ],
  };
}

const colour = (source: string, text: string): string =>
  source === "stderr"
    ? `\u001b[33m${text}\u001b[39m`
    : source === "system"
      ? `\u001b[36m${text}\u001b[39m`
      : text;

function follow(stack: Stack, jobId: string, token: string): Promise<string> {
  return new Promise((resolve) => {
    const source = new EventSource(`${stack.workerUrl}/api/jobs/${jobId}/logs/stream?after=0-0:0`, {
      fetch: (input, init) =>
        fetch(input, { ...init, headers: { ...init?.headers, Authorization: `Bearer ${token}` } }),
    });
    source.addEventListener("log", (event) => {
      for (const line of (JSON.parse(event.data) as { lines: LogLine[] }).lines) {
        console.log(
          `  ${line.ts.slice(11, 23)} ${line.phase.padEnd(10)} ${colour(line.source, line.text)}`,
        );
      }
    });
    source.addEventListener("done", (event) => {
      source.close();
      resolve((JSON.parse(event.data) as { status: string }).status);
    });
  });
}

let stack: Stack;
try {
  stack = await startStack({
    bridgePort: Number(process.env.BRIDGE_PORT ?? 0) || 0,
    runnerOutput: "ignore",
    // SANDBOX=e2b: builds go through the E2B adapter and SDK, against tools/e2b-local.
    sandbox: process.env.SANDBOX === "e2b" ? "e2b-local" : "local",
  });
} catch (error) {
  const message = error instanceof Error ? error.message : String(error);
  console.error(`npm start: ${message}`);
  if (/redis-server/.test(message) && !message.includes(REDIS_INSTALL_COMMAND))
    console.error(`Install it with: ${REDIS_INSTALL_COMMAND}`);
  process.exit(1);
}
let stopping = false;
const stop = async (): Promise<void> => {
  if (stopping) process.exit(1);
  stopping = true;
  console.log("\nstopping...");
  await stack.stop();
  process.exit(0);
};
process.on("SIGINT", () => void stop());
process.on("SIGTERM", () => void stop());

const token = stack.signToken(DEV_USER, 12 * 3600);
console.log(`Worker      ${stack.workerUrl}  (Durable Objects, Queue, R2 in local workerd)`);
console.log(
  `Runner      ${stack.runner.url}  (${stack.e2bLocal === undefined ? "local sandbox" : `E2B adapter against e2b-local at ${stack.e2bLocal.url}`})`,
);
console.log(`Redis       ${stack.redisServer.url} behind the Upstash bridge ${stack.bridge.url}`);

const created = await fetch(`${stack.workerUrl}/api/jobs`, {
  method: "POST",
  headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/json" },
  body: JSON.stringify(demoSpec()),
});
const job = (await created.json()) as { id: string };
console.log(`\nDemo job ${job.id}: its DEPLOY_TOKEN secret is registered for redaction.`);
console.log(`Watch it in a browser: ${devSignInUrl(stack.workerUrl, token, `/jobs/${job.id}`)}`);
console.log(`Live log over SSE:\n`);
const status = await follow(stack, job.id, token);
console.log(`\nThe job ended: ${status}.`);

console.log(`
Look for yourself (this development token is valid for 12 hours, for user ${DEV_USER}):
  In a browser (signs in with the token, then opens the live log viewer):
    ${devSignInUrl(stack.workerUrl, token, `/jobs/${job.id}`)}
  TOKEN='${token}'
  curl -N -H "Authorization: Bearer $TOKEN" '${stack.workerUrl}/api/jobs/${job.id}/logs/stream?after=0-0:0'
  curl -H "Authorization: Bearer $TOKEN" '${stack.workerUrl}/api/jobs/${job.id}/logs?limit=20'
  curl -H "Authorization: Bearer $TOKEN" '${stack.workerUrl}/api/jobs/${job.id}/logs.txt'
  curl -H "Authorization: Bearer $TOKEN" '${stack.workerUrl}/api/jobs/${job.id}'

Everything keeps running; Ctrl-C stops it.`);
