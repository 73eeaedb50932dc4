import { spawn } from "node:child_process";
import { once } from "node:events";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";

// The runner's own process, started as `npm start` and the image start it: what it says, and
// refuses, before it takes any job. Nothing is listening at its Upstash URL; it gets no further.
const MAIN = fileURLToPath(new URL("../../worker-build-runner/main.ts", import.meta.url));
const base = {
  PATH: process.env.PATH ?? "",
  UPSTASH_REDIS_REST_URL: "http://127.0.0.1:9",
  UPSTASH_REDIS_REST_TOKEN: "upstash-token",
  RUNNER_TOKEN: "runner-token-0123456789",
  JOB_SECRETS_KEY: Buffer.alloc(32, 7).toString("base64"),
  HOST: "127.0.0.1",
  PORT: "0",
};

function startRunner(env: Record<string, string>) {
  const child = spawn(process.execPath, [MAIN], { env, stdio: ["ignore", "pipe", "pipe"] });
  let output = "";
  child.stdout.on("data", (chunk: Buffer) => (output += chunk.toString("utf8")));
  child.stderr.on("data", (chunk: Buffer) => (output += chunk.toString("utf8")));
  return { child, output: () => output };
}

describe("the runner's start", () => {
  it("announces SANDBOX=local-unsafe loudly: unisolated, development only", async () => {
    const runner = startRunner({ ...base, SANDBOX: "local-unsafe" });
    try {
      const deadline = Date.now() + 30_000;
      while (!runner.output().includes("Development only") && Date.now() < deadline) {
        if (runner.child.exitCode !== null) break;
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      expect(runner.output()).toContain(
        "SANDBOX=local-unsafe: builds run as this runner's user, unisolated",
      );
      expect(runner.output()).toContain("never let anyone else submit jobs to this runner");
    } finally {
      runner.child.kill("SIGKILL");
    }
  });

  it("with NODE_ENV=production and no SANDBOX, refuses to start, naming it", async () => {
    const runner = startRunner({ ...base, NODE_ENV: "production" });
    const [code] = await once(runner.child, "exit");
    expect(code).toBe(2);
    expect(runner.output()).toContain("SANDBOX must be set when NODE_ENV=production");
  });
});
