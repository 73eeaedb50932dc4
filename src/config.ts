import { z } from "zod";
import { type ClerkAuthOptions, clerkOptionProblems } from "./http/auth.ts";
import { type StreamTicketOptions, streamTicketProblems } from "./http/stream-ticket.ts";
import {
  type ViewerSettings,
  type ViewerVars,
  viewerSettings,
  viewerSettingsProblems,
} from "./http/viewer-settings.ts";
import type { DispatchSettings } from "./jobs/dispatcher.ts";
import { DEFAULT_RECORD_TTL_SECONDS } from "./jobs/expiry.ts";
import type { CreationRateLimit } from "./jobs/quotas.ts";
import type { SweepSettings } from "./jobs/sweep.ts";
import type { S3Settings } from "./log/archive-store.ts";
import type { ArchiveOptions } from "./log/archiver.ts";
import { jobSecretsKeyProblem } from "./shared/job-secrets.ts";
import type { JobStreamSettings } from "./stream/job-stream.ts";

/** The Worker's vars and secrets, checked and typed. */
export interface WorkerConfig {
  readonly redis: { readonly url: string; readonly token: string };
  readonly runner: { readonly url: string; readonly token: string };
  readonly clerk: ClerkAuthOptions;
  /** Exact origins whose pages may call /api/* with credentials; empty: same-origin only. */
  readonly corsOrigins: ReadonlySet<string>;
  /** Null without STREAM_TICKET_SECRET: the Worker serves sessions, and only ticket requests fail. */
  readonly streamTickets: StreamTicketOptions | null;
  readonly stream: JobStreamSettings;
  readonly dispatch: DispatchSettings;
  readonly sweep: SweepSettings;
  readonly creationRateLimit: CreationRateLimit;
  /** Null without JOB_SECRETS_KEY: only creating a job fails, with a 500 naming it. */
  readonly jobSecretsKey: string | null;
  readonly devSignIn: boolean;
  /** The build page's sign-in link and Clerk browser SDK. */
  readonly viewer: ViewerSettings;
  /** Set when all four S3 variables are; otherwise the archive is the R2 binding. */
  readonly s3: S3Settings | null;
  /** Segment sizes (when set) and how long an archived job's record stays in Redis. */
  readonly archive: ArchiveOptions & { readonly recordTtl: number };
}

export class ConfigError extends Error {
  override readonly name = "ConfigError";
}

// Workers hand every var over as a string, and "" is how .dev.vars and the dashboard leave one
// unset: both are read as absent.
const text = z.preprocess(
  (value) => (typeof value === "string" && value.trim() !== "" ? value.trim() : undefined),
  z.string().optional(),
);

const required = text.refine((value) => value !== undefined, { error: "is not set" });

const httpUrl = required.refine(
  (value) =>
    value === undefined ||
    (URL.canParse(value) && ["http:", "https:"].includes(new URL(value).protocol)),
  { error: "must be an http(s) URL" },
);

// Job specs (commands, files) and the runner token cross it: plain http only on this machine.
const runnerUrl = httpUrl.refine(
  (value) => {
    if (value === undefined || !URL.canParse(value)) return true;
    const { protocol, hostname } = new URL(value);
    const loopback =
      hostname === "localhost" || hostname === "[::1]" || /^127(\.\d{1,3}){3}$/.test(hostname);
    return protocol !== "http:" || loopback;
  },
  { error: "must be https:// (http:// only on loopback)" },
);

const list = text.transform((value) =>
  (value ?? "")
    .split(",")
    .map((item) => item.trim())
    .filter((item) => item !== ""),
);

const optionalPositiveInteger = text
  .refine((value) => value === undefined || /^[1-9]\d{0,14}$/.test(value), {
    error: "must be a positive integer",
  })
  .transform((value) => (value === undefined ? undefined : Number(value)));

const positiveInteger = (fallback: number) =>
  optionalPositiveInteger.transform((value) => value ?? fallback);

// 0 allowed: a grace of none (the tests' sweep fails a lost runner's job at first sight).
const nonNegativeInteger = (fallback: number) =>
  text
    .refine((value) => value === undefined || /^(0|[1-9]\d{0,14})$/.test(value), {
      error: "must be a whole number (0 or more)",
    })
    .transform((value) => (value === undefined ? fallback : Number(value)));

const varsSchema = z.object({
  UPSTASH_REDIS_REST_URL: httpUrl,
  UPSTASH_REDIS_REST_TOKEN: required,
  RUNNER_URL: runnerUrl,
  RUNNER_TOKEN: required,
  CLERK_JWT_KEY: text,
  CLERK_SECRET_KEY: text,
  CLERK_API_URL: text,
  CLERK_AUTHORIZED_PARTIES: list,
  CORS_ORIGINS: list.superRefine((origins, context) => {
    const bad = origins.filter(
      (origin) => !URL.canParse(origin) || new URL(origin).origin !== origin,
    );
    if (bad.length > 0)
      context.addIssue({
        code: "custom",
        message: `must list origins such as https://app.example.com (no path, no trailing slash, no "*"): ${bad.map((item) => JSON.stringify(item)).join(", ")}`,
      });
  }),
  STREAM_TICKET_SECRET: text,
  // Its range is checked with the ticket issuer's own rules, below.
  STREAM_TICKET_TTL_SECONDS: optionalPositiveInteger,
  SSE_HEARTBEAT_MS: positiveInteger(20_000),
  MAX_VIEWERS_PER_JOB: positiveInteger(100),
  TAIL_ACTIVE_POLL_MS: positiveInteger(100),
  TAIL_IDLE_POLL_MAX_MS: positiveInteger(1_000),
  TAIL_SAFETY_POLL_MS: positiveInteger(5_000),
  MAX_VIEWER_LAG_BYTES: positiveInteger(1024 * 1024),
  FAN_OUT_PACED_FROM: positiveInteger(250),
  JOBS_PER_USER_PER_MINUTE: positiveInteger(10),
  MAX_RUNNING_JOBS_PER_USER: positiveInteger(2),
  DISPATCH_ORDER: text.pipe(z.enum(["fair", "fifo"], { error: "must be fair or fifo" }).optional()),
  DISPATCH_BUSY_RETRY_MS: positiveInteger(2_000),
  LEASE_LAPSE_GRACE_MS: nonNegativeInteger(60_000),
  QUEUED_JOB_TIMEOUT_MS: positiveInteger(30 * 60_000),
  JOB_SECRETS_KEY: text.superRefine((value, context) => {
    const problem = value === undefined ? null : jobSecretsKeyProblem(value);
    if (problem !== null) context.addIssue({ code: "custom", message: problem });
  }),
  JOB_RECORD_TTL_SECONDS: positiveInteger(DEFAULT_RECORD_TTL_SECONDS),
  ARCHIVE_SEGMENT_LINES: optionalPositiveInteger,
  // At most 4 MiB: the runner lets its live copy go 12 MiB past its byte cap while the archive
  // waits for a segment's last lines (worker-build-runner/redis-writer.ts), which holds only if
  // a segment completes within that.
  ARCHIVE_SEGMENT_BYTES: optionalPositiveInteger.refine(
    (value) => value === undefined || value <= 4 * 1024 * 1024,
    { error: "must be at most 4194304 (the runner's live copy allows for one segment)" },
  ),
  DEV_SIGN_IN: text,
  CLERK_SIGN_IN_URL: text,
  CLERK_PUBLISHABLE_KEY: text,
  CLERK_JS_URL: text,
  S3_ENDPOINT: text,
  S3_BUCKET: text,
  S3_REGION: text,
  S3_ACCESS_KEY_ID: text,
  S3_SECRET_ACCESS_KEY: text,
});

type Vars = z.infer<typeof varsSchema>;

function clerkOptions(vars: Vars): ClerkAuthOptions {
  return {
    jwtKey: vars.CLERK_JWT_KEY,
    secretKey: vars.CLERK_SECRET_KEY,
    apiUrl: vars.CLERK_API_URL,
    authorizedParties: vars.CLERK_AUTHORIZED_PARTIES,
  };
}

function streamTicketOptions(vars: Vars): StreamTicketOptions | null {
  return vars.STREAM_TICKET_SECRET === undefined
    ? null
    : {
        secret: vars.STREAM_TICKET_SECRET,
        ...(vars.STREAM_TICKET_TTL_SECONDS === undefined
          ? {}
          : { ttlSeconds: vars.STREAM_TICKET_TTL_SECONDS }),
      };
}

function viewerVars(vars: Vars): ViewerVars {
  return {
    signInUrl: vars.CLERK_SIGN_IN_URL,
    publishableKey: vars.CLERK_PUBLISHABLE_KEY,
    clerkJsUrl: vars.CLERK_JS_URL,
  };
}

const configSchema = varsSchema
  // Clerk's and the tickets' options are checked by the rules their factories apply, and also
  // when another variable is wrong (`when`), so one message names every problem. Their
  // variables parse whatever they hold.
  .superRefine(
    (vars, context) => {
      const problems = clerkOptionProblems(clerkOptions(vars));
      const tickets = streamTicketOptions(vars);
      if (tickets !== null) problems.push(...streamTicketProblems(tickets));
      problems.push(...viewerSettingsProblems(viewerVars(vars)));
      for (const message of problems) context.addIssue({ code: "custom", message });
    },
    { when: () => true },
  )
  .transform(
    (vars): WorkerConfig => ({
      redis: {
        url: asSet(vars.UPSTASH_REDIS_REST_URL),
        token: asSet(vars.UPSTASH_REDIS_REST_TOKEN),
      },
      runner: { url: asSet(vars.RUNNER_URL), token: asSet(vars.RUNNER_TOKEN) },
      clerk: clerkOptions(vars),
      corsOrigins: new Set(vars.CORS_ORIGINS),
      streamTickets: streamTicketOptions(vars),
      stream: {
        heartbeatMs: vars.SSE_HEARTBEAT_MS,
        maxViewers: vars.MAX_VIEWERS_PER_JOB,
        activePollMs: vars.TAIL_ACTIVE_POLL_MS,
        idlePollMaxMs: vars.TAIL_IDLE_POLL_MAX_MS,
        safetyPollMs: vars.TAIL_SAFETY_POLL_MS,
        maxViewerLagBytes: vars.MAX_VIEWER_LAG_BYTES,
        pacedFrom: vars.FAN_OUT_PACED_FROM,
      },
      dispatch: {
        order: vars.DISPATCH_ORDER ?? "fair",
        maxRunningPerUser: vars.MAX_RUNNING_JOBS_PER_USER,
        busyRetryMs: vars.DISPATCH_BUSY_RETRY_MS,
      },
      sweep: {
        leaseLapseGraceMs: vars.LEASE_LAPSE_GRACE_MS,
        queuedJobTimeoutMs: vars.QUEUED_JOB_TIMEOUT_MS,
      },
      creationRateLimit: { limit: vars.JOBS_PER_USER_PER_MINUTE, windowSeconds: 60 },
      jobSecretsKey: vars.JOB_SECRETS_KEY ?? null,
      devSignIn: vars.DEV_SIGN_IN === "1",
      viewer: viewerSettings(viewerVars(vars)),
      s3:
        vars.S3_ENDPOINT && vars.S3_BUCKET && vars.S3_ACCESS_KEY_ID && vars.S3_SECRET_ACCESS_KEY
          ? {
              endpoint: vars.S3_ENDPOINT,
              bucket: vars.S3_BUCKET,
              region: vars.S3_REGION ?? "auto",
              accessKeyId: vars.S3_ACCESS_KEY_ID,
              secretAccessKey: vars.S3_SECRET_ACCESS_KEY,
            }
          : null,
      archive: {
        recordTtl: vars.JOB_RECORD_TTL_SECONDS,
        ...(vars.ARCHIVE_SEGMENT_LINES === undefined
          ? {}
          : { segmentLines: vars.ARCHIVE_SEGMENT_LINES }),
        ...(vars.ARCHIVE_SEGMENT_BYTES === undefined
          ? {}
          : { segmentBytes: vars.ARCHIVE_SEGMENT_BYTES }),
      },
    }),
  );

// The schema has already refused an unset required variable; this only narrows the type.
function asSet(value: string | undefined): string {
  return value ?? "";
}

const parsed = new WeakMap<object, WorkerConfig>();

/**
 * The Worker's configuration, parsed from its vars once per `env` object (workerd hands every
 * request of an isolate the same one). A misconfigured Worker throws a ConfigError naming
 * every problem, on every request: a 500 rather than anything served half-configured.
 */
export function workerConfig(env: Env): WorkerConfig {
  let config = parsed.get(env);
  if (config === undefined) {
    const result = configSchema.safeParse(env);
    if (!result.success) {
      const problems = result.error.issues.map((issue) =>
        issue.path.length > 0 ? `${issue.path.join(".")} ${issue.message}` : issue.message,
      );
      throw new ConfigError(`Worker configuration: ${problems.join("; ")}`);
    }
    config = result.data;
    parsed.set(env, config);
  }
  return config;
}
