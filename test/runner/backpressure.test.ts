import type { Redis } from "@upstash/redis";
import { afterAll, afterEach, beforeAll, describe, expect, inject, it } from "vitest";
import { decodeStreamReply } from "../../src/shared/entry.ts";
import { logStreamKey } from "../../src/shared/keys.ts";
import { startUpstashBridge, type UpstashBridge } from "../../tools/upstash-bridge/bridge.ts";
import { createLogStreamer } from "../../worker-build-runner/log-streamer.ts";
import { createUpstashClient } from "../../worker-build-runner/redis.ts";
import { createRedisLogWriter } from "../../worker-build-runner/redis-writer.ts";
import { localSandbox } from "../../worker-build-runner/sandbox/local.ts";
import { uniqueJobId } from "../support/redis.ts";

// A build that prints faster than Redis takes its lines: the local sandbox stops reading its
// output (the build blocks on its pipe) instead of the writer dropping lines. During an outage
// the build is not held: its lines wait in the buffer, and past it the oldest are dropped with a
// notice that says Redis was unreachable.
let bridge: UpstashBridge;
let redis: Redis;
const logger = { warn: () => undefined };

beforeAll(async () => {
  bridge = await startUpstashBridge({ redisUrl: inject("redisUrl"), token: "backpressure" });
  redis = createUpstashClient({ url: bridge.url, token: bridge.token });
});
afterEach(() => bridge.faults.reset());
afterAll(async () => bridge.close());

// 12,000 lines of 100 characters: about 3.5 MB in the buffer's count, over three times its bound
// (a pipe read of 64 KB of output counts about 190 KB).
const LINES = 12_000;
const PRINT = `awk 'BEGIN { for (i = 1; i <= ${LINES}; i++) printf "line %06d %s\\n", i, sprintf("%089d", 0) }'`;

async function runPrinting(jobId: string) {
  const writer = createRedisLogWriter({
    redis,
    jobId,
    logger,
    maxBufferedBytes: 1024 * 1024,
    pauseAboveBytes: 128 * 1024,
    // Small requests: Redis takes about 32 KB per round trip, far slower than the build prints.
    maxRequestBytes: 32 * 1024,
    retryInitialDelayMs: 20,
    retryMaxDelayMs: 100,
  });
  const log = createLogStreamer({ writer });
  const session = await localSandbox().create();
  try {
    const result = await session.run(PRINT, {
      onStdout: (chunk) => log.onStdout(chunk),
      onStderr: (chunk) => log.onStderr(chunk),
    });
    await log.flush();
    await writer.end("ready");
    return { result, stats: writer.stats };
  } finally {
    await session.kill();
  }
}

const textsOf = async (jobId: string) =>
  decodeStreamReply(await redis.xrange(logStreamKey(jobId), "-", "+"))
    .flatMap((entry) => entry.lines)
    .map((line) => line.text);

describe("backpressure", () => {
  it("holds a fast build back while Redis is slower, and drops nothing", async () => {
    const jobId = uniqueJobId("slow-redis");
    bridge.faults.latencyMs = 20;
    const { result, stats } = await runPrinting(jobId);
    expect(result.exitCode).toBe(0);
    expect(stats.linesDropped).toBe(0);
    const texts = await textsOf(jobId);
    expect(texts).toHaveLength(LINES);
    expect(
      texts.every((text, i) => text.startsWith(`line ${String(i + 1).padStart(6, "0")} `)),
    ).toBe(true);
  }, 60_000);

  it("does not hold the build during an outage; past the buffer the notice blames the outage", async () => {
    const jobId = uniqueJobId("outage");
    bridge.faults.outage(3_000);
    const { result, stats } = await runPrinting(jobId);
    expect(result.exitCode).toBe(0);
    expect(stats.linesDropped).toBeGreaterThan(0);
    const texts = await textsOf(jobId);
    expect(texts).toContain(
      `${stats.linesDropped} log lines were dropped here: Redis was unreachable for too long to keep them.`,
    );
    expect(texts.filter((text) => text.startsWith("line "))).toHaveLength(
      LINES - stats.linesDropped,
    );
  }, 60_000);
});
