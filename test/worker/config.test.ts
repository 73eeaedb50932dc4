import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { ConfigError, workerConfig } from "../../src/config.ts";

describe("workerConfig()", () => {
  it("reads the test vars, with the defaults of what is unset", () => {
    const config = workerConfig({ ...env, STREAM_TICKET_TTL_SECONDS: "", S3_ENDPOINT: "" });
    expect(config).toMatchObject({
      redis: { url: env.UPSTASH_REDIS_REST_URL, token: env.UPSTASH_REDIS_REST_TOKEN },
      runner: { token: "test-runner-token" },
      stream: { heartbeatMs: 300, maxViewers: 4, maxViewerLagBytes: 262_144 },
      streamTickets: { secret: env.STREAM_TICKET_SECRET },
      devSignIn: false,
      dispatch: { order: "fair" },
      jobSecretsKey: env.JOB_SECRETS_KEY,
      s3: null,
      archive: { recordTtl: 604_800, segmentLines: 10_000, segmentBytes: 4_194_304 },
    });
    expect(config.streamTickets?.ttlSeconds).toBeUndefined();
    expect([...config.corsOrigins]).toEqual(["https://app.example.com", "http://localhost:3000"]);
    const defaults = workerConfig({
      ...env,
      SSE_HEARTBEAT_MS: "",
      MAX_VIEWERS_PER_JOB: "",
      LEASE_LAPSE_GRACE_MS: "",
      QUEUED_JOB_TIMEOUT_MS: "",
    });
    expect(defaults.stream).toMatchObject({ heartbeatMs: 20_000, maxViewers: 100 });
    expect(defaults.sweep).toEqual({ leaseLapseGraceMs: 60_000, queuedJobTimeoutMs: 1_800_000 });
    // The tests' own: a lost runner's job fails at the first sweep that sees it.
    expect(config.sweep.leaseLapseGraceMs).toBe(0);
  });

  it("names every problem in one message", () => {
    const broken: Env = {
      ...env,
      UPSTASH_REDIS_REST_URL: "",
      RUNNER_URL: "ftp://runner",
      CLERK_JWT_KEY: "",
      CLERK_SECRET_KEY: "",
      CORS_ORIGINS: "https://ok.example.com,*",
      SSE_HEARTBEAT_MS: "0",
      MAX_VIEWER_LAG_BYTES: "1MB",
      STREAM_TICKET_SECRET: "short",
      DISPATCH_ORDER: "lifo",
      JOB_SECRETS_KEY: "c2hvcnQ=",
      JOB_RECORD_TTL_SECONDS: "7d",
      ARCHIVE_SEGMENT_LINES: "0",
      ARCHIVE_SEGMENT_BYTES: "8388608",
      LEASE_LAPSE_GRACE_MS: "-1",
      QUEUED_JOB_TIMEOUT_MS: "30m",
    };
    let error: unknown;
    try {
      workerConfig(broken);
    } catch (thrown) {
      error = thrown;
    }
    expect(error).toBeInstanceOf(ConfigError);
    const message = error instanceof Error ? error.message : "";
    for (const named of [
      /UPSTASH_REDIS_REST_URL is not set/,
      /RUNNER_URL must be an http\(s\) URL/,
      /CORS_ORIGINS must list origins .*"\*"/,
      /SSE_HEARTBEAT_MS must be a positive integer/,
      /MAX_VIEWER_LAG_BYTES must be a positive integer/,
      /CLERK_JWT_KEY.*CLERK_SECRET_KEY/,
      /STREAM_TICKET_SECRET\) must be at least 32 characters/,
      /DISPATCH_ORDER must be fair or fifo/,
      /JOB_SECRETS_KEY must be 32 bytes/,
      /JOB_RECORD_TTL_SECONDS must be a positive integer/,
      /ARCHIVE_SEGMENT_LINES must be a positive integer/,
      /ARCHIVE_SEGMENT_BYTES must be at most 4194304/,
      /LEASE_LAPSE_GRACE_MS must be a whole number/,
      /QUEUED_JOB_TIMEOUT_MS must be a positive integer/,
    ])
      expect(message).toMatch(named);
  });

  it("parses an env object once", () => {
    const copy: Env = { ...env };
    expect(workerConfig(copy)).toBe(workerConfig(copy));
  });
});
