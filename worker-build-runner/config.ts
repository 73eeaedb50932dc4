import { jobSecretsKeyProblem } from "../src/shared/job-secrets.ts";
import type { UpstashSettings } from "./redis.ts";

export class ConfigError extends Error {
  override readonly name = "ConfigError";
  readonly code = "bad_config";
}

type Environment = Readonly<Record<string, string | undefined>>;

export interface RunnerConfig {
  readonly upstash: UpstashSettings;
  readonly runnerToken: string;
  /** Opens the env and secrets the Worker seals into each job; the Worker has the same value. */
  readonly jobSecretsKey: string;
  readonly port: number;
  readonly host: string;
  /** The Worker's base URL, for wake and end notifications; optional (the sweep covers ends). */
  readonly workerUrl: string | null;
  readonly sandbox: "local" | "e2b";
  /** For SANDBOX=e2b: the template builds start from, and where the E2B API and envd are. */
  readonly e2b: {
    readonly template: string | undefined;
    readonly apiUrl: string | undefined;
    readonly sandboxUrl: string | undefined;
  };
  readonly concurrency: number;
  /** How long a job's lease lives unless the runner refreshes it; the sweep fails jobs whose lease ran out. */
  readonly leaseMs: number;
}

/**
 * Reads the runner's settings from the environment in one place, failing with one message that
 * names every missing or malformed variable.
 */
export function readUpstashSettings(env: Environment = process.env): UpstashSettings {
  const problems: string[] = [];
  const settings = upstashFrom(env, problems);
  if (problems.length > 0) throw new ConfigError(`runner configuration: ${problems.join("; ")}`);
  return settings;
}

function upstashFrom(env: Environment, problems: string[]): UpstashSettings {
  const url = env.UPSTASH_REDIS_REST_URL ?? "";
  const token = env.UPSTASH_REDIS_REST_TOKEN ?? "";
  if (url === "") problems.push("UPSTASH_REDIS_REST_URL is not set");
  else if (!/^https?:\/\/[^\s/]+/.test(url))
    problems.push(`UPSTASH_REDIS_REST_URL is not an http(s) URL: ${JSON.stringify(url)}`);
  if (token === "") problems.push("UPSTASH_REDIS_REST_TOKEN is not set");
  return { url, token };
}

function integer(
  env: Environment,
  name: string,
  fallback: number,
  min: number,
  max: number,
  problems: string[],
): number {
  const raw = env[name];
  if (raw === undefined || raw === "") return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < min || value > max)
    problems.push(`${name} must be an integer from ${min} to ${max}, got ${JSON.stringify(raw)}`);
  return value;
}

export function readRunnerConfig(env: Environment = process.env): RunnerConfig {
  const problems: string[] = [];
  const upstash = upstashFrom(env, problems);
  const runnerToken = env.RUNNER_TOKEN ?? "";
  if (runnerToken.length < 16) problems.push("RUNNER_TOKEN must be set to at least 16 characters");
  const jobSecretsKey = env.JOB_SECRETS_KEY ?? "";
  const keyProblem = jobSecretsKeyProblem(jobSecretsKey);
  if (keyProblem !== null) problems.push(keyProblem);
  const sandbox = env.SANDBOX ?? (env.E2B_API_KEY ? "e2b" : "local");
  if (sandbox !== "local" && sandbox !== "e2b")
    problems.push(`SANDBOX must be local or e2b, got ${JSON.stringify(sandbox)}`);
  if (sandbox === "e2b" && !env.E2B_API_KEY) problems.push("SANDBOX=e2b needs E2B_API_KEY");
  const e2b = {
    template: env.E2B_TEMPLATE || undefined,
    apiUrl: env.E2B_API_URL || undefined,
    sandboxUrl: env.E2B_SANDBOX_URL || undefined,
  };
  for (const name of ["E2B_API_URL", "E2B_SANDBOX_URL"] as const) {
    const url = env[name];
    if (url && !/^https?:\/\/[^\s/]+/.test(url))
      problems.push(`${name} is not an http(s) URL: ${JSON.stringify(url)}`);
  }
  const workerUrl = env.WORKER_URL ?? null;
  if (workerUrl !== null && !/^https?:\/\/[^\s/]+/.test(workerUrl))
    problems.push(`WORKER_URL is not an http(s) URL: ${JSON.stringify(workerUrl)}`);
  const config: RunnerConfig = {
    upstash,
    runnerToken,
    jobSecretsKey,
    port: integer(env, "PORT", 8788, 0, 65_535, problems),
    host: env.HOST ?? "0.0.0.0",
    workerUrl,
    sandbox: sandbox === "e2b" ? "e2b" : "local",
    e2b,
    concurrency: integer(env, "RUNNER_CONCURRENCY", 2, 1, 64, problems),
    leaseMs: integer(env, "RUNNER_LEASE_MS", 30_000, 1_000, 600_000, problems),
  };
  if (problems.length > 0) throw new ConfigError(`runner configuration: ${problems.join("; ")}`);
  return config;
}
