import type { Redis } from "@upstash/redis";
import { afterAll, beforeAll, inject } from "vitest";
import { decodeStreamReply, type StreamEntry } from "../../src/shared/entry.ts";
import { type JobRecord, parseJobRecord } from "../../src/shared/job.ts";
import type { JobSpec, RunRequest } from "../../src/shared/job-spec.ts";
import { jobKey, logStreamKey } from "../../src/shared/keys.ts";
import { startUpstashBridge, type UpstashBridge } from "../../tools/upstash-bridge/bridge.ts";
import { createUpstashClient } from "../../worker-build-runner/redis.ts";
import type { Logger } from "../../worker-build-runner/redis-writer.ts";
import { localSandbox } from "../../worker-build-runner/sandbox/local.ts";
import type { Sandbox } from "../../worker-build-runner/sandbox/types.ts";
import { queuedJob } from "./run-request.ts";

/** What runJob is given by every test of it: the runner's Redis, a sandbox and a logger. */
export interface RunJobBedDeps {
  readonly redis: Redis;
  readonly sandbox: Sandbox;
  readonly logger: Logger;
}

export interface RunJobBed {
  /** The Upstash bridge over the suite's redis-server; its `faults` stall or drop answers. */
  readonly bridge: UpstashBridge;
  /** The runner's own client of the bridge. */
  readonly redis: Redis;
  readonly deps: RunJobBedDeps;
  /** What the runner warned of so far (tests that inject faults clear it after each). */
  readonly warnings: string[];
  /** A queued job of the bed's owner, as the Worker leaves it for the runner. */
  queuedJob(label: string, spec: Partial<JobSpec>): Promise<RunRequest>;
  /** The job's stream, every entry decoded. */
  entriesOf(jobId: string): Promise<StreamEntry[]>;
  jobOf(jobId: string): Promise<JobRecord>;
}

/**
 * The ground a test file of runJob stands on, set up before its tests and closed after them:
 * the Upstash bridge (its `token`) over the redis-server of global setup, the runner's client of
 * it (with `requestTimeoutMs` when given), the local sandbox and a logger that keeps warnings.
 */
export function runJobBed(options: {
  readonly token: string;
  readonly owner: string;
  readonly requestTimeoutMs?: number;
}): RunJobBed {
  let started: { readonly bridge: UpstashBridge; readonly redis: Redis } | undefined;
  beforeAll(async () => {
    const bridge = await startUpstashBridge({ redisUrl: inject("redisUrl"), token: options.token });
    const redis = createUpstashClient({
      url: bridge.url,
      token: bridge.token,
      ...(options.requestTimeoutMs === undefined
        ? {}
        : { requestTimeoutMs: options.requestTimeoutMs }),
    });
    started = { bridge, redis };
  });
  afterAll(async () => {
    await started?.bridge.close();
  });
  const running = () => {
    if (started === undefined) throw new Error("runJobBed() is ready once beforeAll has run");
    return started;
  };
  const warnings: string[] = [];
  const sandbox = localSandbox();
  const logger: Logger = { warn: (message: string) => void warnings.push(message) };
  return {
    get bridge() {
      return running().bridge;
    },
    get redis() {
      return running().redis;
    },
    get deps() {
      return { redis: running().redis, sandbox, logger };
    },
    warnings,
    queuedJob: (label, spec) => queuedJob(running().redis, options.owner, label, spec),
    entriesOf: async (jobId) =>
      decodeStreamReply(await running().redis.xrange(logStreamKey(jobId), "-", "+")),
    jobOf: async (jobId) =>
      parseJobRecord((await running().redis.get<string>(jobKey(jobId))) ?? "null"),
  };
}
