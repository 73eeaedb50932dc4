import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { ConfigError, readRunnerConfig } from "../../worker-build-runner/config.ts";

const base = {
  UPSTASH_REDIS_REST_URL: "https://eu1-example.upstash.io",
  UPSTASH_REDIS_REST_TOKEN: "upstash-token",
  RUNNER_TOKEN: "runner-token-0123456789",
  JOB_SECRETS_KEY: Buffer.alloc(32, 7).toString("base64"),
};

function problem(env: Record<string, string | undefined>): string {
  try {
    readRunnerConfig(env);
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    expect(error).toMatchObject({ code: "bad_config" });
    return (error as Error).message;
  }
  return expect.unreachable("expected a ConfigError");
}

describe("readRunnerConfig", () => {
  it("takes defaults for what is unset or empty", () => {
    const config = readRunnerConfig({ ...base, PORT: "", WORKER_URL: "" });
    expect(config).toMatchObject({
      port: 8788,
      host: "0.0.0.0",
      workerUrl: null,
      sandbox: "local",
      concurrency: 2,
      leaseMs: 30_000,
      production: false,
      sandboxPassEnv: [],
      sandboxLimits: {
        memoryBytes: 2048 * 1024 * 1024,
        processes: 512,
        cpuSeconds: 900,
        diskBytes: 2048 * 1024 * 1024,
      },
      liveCopy: { headLines: 1_000, tailLines: 50_000, maxBytes: 64 * 1024 * 1024 },
    });
  });

  it("refuses a live copy whose cap would take a key past Upstash's 100 MB", () => {
    expect(problem({ ...base, LIVE_MAX_MB: "77" })).toMatch(/LIVE_MAX_MB/);
    expect(readRunnerConfig({ ...base, LIVE_MAX_MB: "8" }).liveCopy.maxBytes).toBe(8 * 1024 * 1024);
  });

  it("names every problem at once", () => {
    const message = problem({
      UPSTASH_REDIS_REST_URL: "redis.example",
      RUNNER_TOKEN: "short",
      PORT: "http",
      SANDBOX: "docker",
      SANDBOX_MEMORY_MB: "1.5",
      SANDBOX_PASS_ENV: "A,,B",
      RUNNER_CONCURRENCY: "0",
      JOB_SECRETS_KEY: "c2hvcnQ=",
      E2B_API_URL: "ftp://api.example",
    });
    for (const name of [
      "UPSTASH_REDIS_REST_URL",
      "UPSTASH_REDIS_REST_TOKEN",
      "RUNNER_TOKEN",
      "PORT",
      "SANDBOX",
      "SANDBOX_MEMORY_MB",
      "SANDBOX_PASS_ENV",
      "RUNNER_CONCURRENCY",
      "JOB_SECRETS_KEY",
      "E2B_API_URL",
    ])
      expect(message).toContain(name);
  });

  it("outside production, an unset SANDBOX is e2b with a key and the isolated sandbox without", () => {
    expect(readRunnerConfig({ ...base, E2B_API_KEY: "e2b_key" }).sandbox).toBe("e2b");
    expect(readRunnerConfig(base).sandbox).toBe("local");
    expect(readRunnerConfig({ ...base, SANDBOX: "local-unsafe" }).sandbox).toBe("local-unsafe");
    expect(problem({ ...base, SANDBOX: "e2b" })).toContain("E2B_API_KEY");
  });

  it("in production, SANDBOX must be said and local-unsafe is refused: no fallback to local", () => {
    const production = { ...base, NODE_ENV: "production" };
    expect(problem(production)).toMatch(/SANDBOX must be set when NODE_ENV=production/);
    // A missing key is an error, never a quiet switch to local processes.
    expect(problem({ ...production, SANDBOX: "e2b" })).toContain("E2B_API_KEY");
    expect(problem({ ...production, SANDBOX: "local-unsafe" })).toContain("refused");
    expect(readRunnerConfig({ ...production, SANDBOX: "e2b", E2B_API_KEY: "k" })).toMatchObject({
      sandbox: "e2b",
      e2bApiKey: "k",
      production: true,
    });
    expect(readRunnerConfig({ ...production, SANDBOX: "local" }).sandbox).toBe("local");
  });

  it("the runner's image says SANDBOX=e2b with NODE_ENV=production: without a key it refuses to start", () => {
    // Every ENV of the Dockerfile, as the image's environment starts.
    const image: Record<string, string> = {};
    const dockerfile = readFileSync(
      new URL("../../worker-build-runner/Dockerfile", import.meta.url),
      "utf8",
    );
    for (const [, assignments] of dockerfile.matchAll(/^ENV\s+(.+)$/gm))
      for (const [, name, value] of (assignments ?? "").matchAll(/(\w+)=(\S+)/g))
        if (name !== undefined && value !== undefined) image[name] = value;
    expect(image).toMatchObject({ NODE_ENV: "production", SANDBOX: "e2b" });
    expect(problem({ ...base, ...image })).toContain("E2B_API_KEY must be set when SANDBOX=e2b");
    expect(readRunnerConfig({ ...base, ...image, E2B_API_KEY: "k" }).sandbox).toBe("e2b");
  });

  it("reads the sandbox's limits and the extra variables builds get", () => {
    const config = readRunnerConfig({
      ...base,
      SANDBOX_MEMORY_MB: "512",
      SANDBOX_PROCESSES: "64",
      SANDBOX_CPU_SECONDS: "30",
      SANDBOX_DISK_MB: "100",
      SANDBOX_PASS_ENV: "HTTPS_PROXY,NO_PROXY",
    });
    expect(config.sandboxLimits).toEqual({
      memoryBytes: 512 * 1024 * 1024,
      processes: 64,
      cpuSeconds: 30,
      diskBytes: 100 * 1024 * 1024,
    });
    expect(config.sandboxPassEnv).toEqual(["HTTPS_PROXY", "NO_PROXY"]);
  });
});
