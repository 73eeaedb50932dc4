import { z } from "zod";
import { jobSecretsKeyProblem } from "../src/shared/job-secrets.ts";
import type { UpstashSettings } from "./redis.ts";

export class ConfigError extends Error {
  override readonly name = "ConfigError";
  readonly code = "bad_config";
}

type Environment = Readonly<Record<string, string | undefined>>;

/** Where builds run: E2B's cloud, the isolated local sandbox, or bare local processes (development only). */
export type SandboxKind = "e2b" | "local" | "local-unsafe";

export interface SandboxLimits {
  readonly memoryBytes: number;
  readonly processes: number;
  readonly cpuSeconds: number;
  readonly diskBytes: number;
}

export interface RunnerConfig {
  readonly upstash: UpstashSettings;
  readonly runnerToken: string;
  /** Opens the env and secrets the Worker seals into each job; the Worker has the same value. */
  readonly jobSecretsKey: string;
  readonly port: number;
  readonly host: string;
  /** The Worker's base URL, for wake and end notifications; optional (the sweep covers ends). */
  readonly workerUrl: string | null;
  readonly sandbox: SandboxKind;
  readonly e2bApiKey: string | null;
  /** For SANDBOX=e2b: the template builds start from, and where the E2B API and envd are. */
  readonly e2b: {
    readonly template: string | undefined;
    readonly apiUrl: string | undefined;
    readonly sandboxUrl: string | undefined;
  };
  readonly sandboxLimits: SandboxLimits;
  /** Names of the runner's variables a local build also gets, beyond the CA-trust ones. */
  readonly sandboxPassEnv: readonly string[];
  readonly concurrency: number;
  /** How long a job's lease lives unless the runner refreshes it; the sweep fails jobs whose lease ran out. */
  readonly leaseMs: number;
  /** What of a job's log Redis keeps live while it runs: the middle goes once archived. */
  readonly liveCopy: LiveCopyLimits;
  readonly production: boolean;
}

export interface LiveCopyLimits {
  readonly headLines: number;
  readonly tailLines: number;
  /** At this many bytes the build waits for the archive (Upstash refuses a key past 100 MB). */
  readonly maxBytes: number;
}

const MIB = 1024 * 1024;

// An unset variable and an empty one mean the same: the default, or "is not set".
const blankIsUnset = (value: unknown): unknown => (value === "" ? undefined : value);
const optional = <T extends z.ZodType>(schema: T) => z.preprocess(blankIsUnset, schema.optional());
const required = <T extends z.ZodType>(schema: T) => z.preprocess(blankIsUnset, schema);
const text = () => z.string({ error: "is not set" });
const httpUrl = () => text().regex(/^https?:\/\/[^\s/]+/, "must be an http(s) URL");
const integer = (min: number, max: number, fallback: number) => {
  const error = `must be an integer from ${min} to ${max}`;
  return optional(
    z.coerce.number({ error }).int({ error }).min(min, { error }).max(max, { error }),
  ).transform((value) => value ?? fallback);
};

// Every variable the runner reads.
const runnerEnvSchema = z.object({
  NODE_ENV: optional(z.string()),
  UPSTASH_REDIS_REST_URL: required(httpUrl()),
  UPSTASH_REDIS_REST_TOKEN: required(text()),
  RUNNER_TOKEN: required(text().min(16, "must be at least 16 characters")),
  JOB_SECRETS_KEY: required(
    text().superRefine((value, context) => {
      const problem = jobSecretsKeyProblem(value);
      if (problem !== null)
        context.addIssue({ code: "custom", message: problem.replace(/^JOB_SECRETS_KEY /, "") });
    }),
  ),
  PORT: integer(0, 65_535, 8788),
  HOST: optional(z.string()).transform((value) => value ?? "0.0.0.0"),
  WORKER_URL: optional(httpUrl()),
  SANDBOX: optional(
    z.enum(["e2b", "local", "local-unsafe"], { error: "must be e2b, local or local-unsafe" }),
  ),
  E2B_API_KEY: optional(z.string()),
  E2B_TEMPLATE: optional(z.string()),
  E2B_API_URL: optional(httpUrl()),
  E2B_SANDBOX_URL: optional(httpUrl()),
  SANDBOX_MEMORY_MB: integer(64, 1_048_576, 2048),
  SANDBOX_PROCESSES: integer(16, 1_000_000, 512),
  SANDBOX_CPU_SECONDS: integer(1, 86_400, 900),
  SANDBOX_DISK_MB: integer(16, 1_048_576, 2048),
  SANDBOX_PASS_ENV: optional(
    z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*(,[A-Za-z_][A-Za-z0-9_]*)*$/, {
      error: "must be a comma-separated list of variable names",
    }),
  ),
  RUNNER_CONCURRENCY: integer(1, 64, 2),
  RUNNER_LEASE_MS: integer(1_000, 600_000, 30_000),
  LIVE_HEAD_LINES: integer(1, 1_000_000, 1_000),
  LIVE_TAIL_LINES: integer(100, 1_000_000, 50_000),
  // Upstash refuses a key past 100 MB (95.4 MiB); the live copy may go 12 MiB past the cap
  // while the archive waits for the lines that complete a segment, and a request (4 MiB) more:
  // 76 + 16 = 92 MiB at most.
  LIVE_MAX_MB: integer(1, 76, 64),
});

// Checks that span variables, on the raw environment so they are named even when another
// variable is malformed.
function crossProblems(env: Environment): string[] {
  const production = env.NODE_ENV === "production";
  const sandbox = blankIsUnset(env.SANDBOX);
  const problems: string[] = [];
  // Production never guesses where builds run: a missing E2B key must not mean local processes.
  if (production && sandbox === undefined)
    problems.push(
      "SANDBOX must be set when NODE_ENV=production (e2b, or local for the isolated sandbox)",
    );
  if (production && sandbox === "local-unsafe")
    problems.push(
      "SANDBOX=local-unsafe runs builds unisolated and is refused when NODE_ENV=production",
    );
  if (sandbox === "e2b" && blankIsUnset(env.E2B_API_KEY) === undefined)
    problems.push("E2B_API_KEY must be set when SANDBOX=e2b");
  return problems;
}

/**
 * Reads the runner's settings from the environment in one place, failing with one message that
 * names every missing or malformed variable.
 */
export function readRunnerConfig(env: Environment = process.env): RunnerConfig {
  const parsed = runnerEnvSchema.safeParse(env);
  const problems = [
    ...(parsed.error?.issues.map((issue) => `${issue.path.join(".")} ${issue.message}`) ?? []),
    ...crossProblems(env),
  ];
  if (!parsed.success || problems.length > 0)
    throw new ConfigError(`runner configuration: ${problems.join("; ")}`);
  const values = parsed.data;
  return {
    upstash: { url: values.UPSTASH_REDIS_REST_URL, token: values.UPSTASH_REDIS_REST_TOKEN },
    runnerToken: values.RUNNER_TOKEN,
    jobSecretsKey: values.JOB_SECRETS_KEY,
    port: values.PORT,
    host: values.HOST,
    workerUrl: values.WORKER_URL ?? null,
    // Outside production an unset SANDBOX is E2B when a key is given, else the isolated sandbox.
    sandbox: values.SANDBOX ?? (values.E2B_API_KEY === undefined ? "local" : "e2b"),
    e2bApiKey: values.E2B_API_KEY ?? null,
    e2b: {
      template: values.E2B_TEMPLATE,
      apiUrl: values.E2B_API_URL,
      sandboxUrl: values.E2B_SANDBOX_URL,
    },
    sandboxLimits: {
      memoryBytes: values.SANDBOX_MEMORY_MB * MIB,
      processes: values.SANDBOX_PROCESSES,
      cpuSeconds: values.SANDBOX_CPU_SECONDS,
      diskBytes: values.SANDBOX_DISK_MB * MIB,
    },
    sandboxPassEnv: values.SANDBOX_PASS_ENV?.split(",") ?? [],
    concurrency: values.RUNNER_CONCURRENCY,
    leaseMs: values.RUNNER_LEASE_MS,
    liveCopy: {
      headLines: values.LIVE_HEAD_LINES,
      tailLines: values.LIVE_TAIL_LINES,
      maxBytes: values.LIVE_MAX_MB * MIB,
    },
    production: values.NODE_ENV === "production",
  };
}
