import type { Redis } from "@upstash/redis";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { decodeStreamReply, type LogRecord } from "../../src/shared/entry.ts";
import { logStreamKey } from "../../src/shared/keys.ts";
import { startUpstashBridge, type UpstashBridge } from "../../tools/upstash-bridge/bridge.ts";
import { createUpstashClient } from "../../worker-build-runner/redis.ts";
import { createRedisLogWriter } from "../../worker-build-runner/redis-writer.ts";
import { uniqueJobId } from "../support/redis.ts";

let bridge: UpstashBridge;
let redis: Redis;
const warnings: string[] = [];
const logger = { warn: (m: string) => void warnings.push(m) };
beforeAll(async () => {
  bridge = await startUpstashBridge({ redisUrl: inject("redisUrl"), token: "writer-edges" });
  redis = createUpstashClient({ url: bridge.url, token: bridge.token });
});
afterAll(async () => bridge.close());
const rec = (text: string): LogRecord => ({
  ts: new Date().toISOString(),
  source: "stdout",
  phase: "build",
  text,
});
const entries = async (jobId: string) =>
  decodeStreamReply(await redis.xrange(logStreamKey(jobId), "-", "+"));
const race = <T>(p: Promise<T>, ms: number) =>
  Promise.race([p.then(() => "resolved"), new Promise((r) => setTimeout(() => r("TIMEOUT"), ms))]);

// Regressions found in review: hostile text cannot push a request past Upstash's 10 MB, and the
// terminal entry stays the last entry and is never lost.
describe("the writer at its edges", () => {
  it("keeps every request under 10 MB when lines are all quotes, and writes them all", async () => {
    const jobId = uniqueJobId("quotes");
    const writer = createRedisLogWriter({
      redis,
      jobId,
      logger,
      retryInitialDelayMs: 20,
      retryMaxDelayMs: 200,
    });
    // 2,000 lines of 1,900 `"` chars: ~4 MB by recordBytes, ~15 MB as an Upstash request body
    for (let i = 0; i < 2000; i++) writer.append(rec(`${i} ${'"'.repeat(1900)}`));
    const outcome = await race(writer.end("ready"), 8000);
    expect(outcome).toBe("resolved");
    expect(writer.stats.failedRequests).toBe(0);
    const lines = (await entries(jobId)).flatMap((entry) => entry.lines);
    expect(lines).toHaveLength(2000);
    expect(lines.at(-1)?.text).toBe(`1999 ${'"'.repeat(1900)}`);
  }, 20000);

  it("never writes anything after the terminal entry, even a trim notice", async () => {
    const jobId = uniqueJobId("trim-end");
    const writer = createRedisLogWriter({ redis, jobId, logger, maxLines: 10 });
    for (let i = 0; i < 10; i++) {
      writer.append(rec(`line ${i}`));
      await writer.drain();
    }
    writer.append(rec("last"));
    await writer.end("ready");
    const es = await entries(jobId);
    expect(es.at(-1)?.end).toBe("ready");
  });

  it("writes its terminal entry after entries another writer put ahead of its clock", async () => {
    const jobId = uniqueJobId("foreign-top");
    const writer = createRedisLogWriter({ redis, jobId, logger });
    writer.append(rec("first"));
    await writer.drain();
    // e.g. the sweep's failJob XADD * with a Redis clock ahead of the runner's (or another runner)
    const future = `${Date.now() + 60_000}-0`;
    await redis.xadd(logStreamKey(jobId), future, {
      v: "1",
      lines: JSON.stringify([rec("written by someone else")]),
    });
    writer.append(rec("mine"));
    await writer.end("ready");
    const es = await entries(jobId);
    expect(es.at(-1)?.end).toBe("ready");
    expect(es.flatMap((e) => e.lines).map((l) => l.text)).toEqual([
      "first",
      "written by someone else",
      "mine",
    ]);
  });

  it("notices lines Redis lost after storing them, and says how many in the log", async () => {
    const jobId = uniqueJobId("lost");
    const writer = createRedisLogWriter({
      redis,
      jobId,
      logger,
      retryInitialDelayMs: 20,
      retryMaxDelayMs: 100,
    });
    for (let i = 1; i <= 10; i++) writer.append(rec(`before ${i}`));
    await writer.drain();
    // Redis restarts without its data: the stream is gone, and the next request fails.
    await redis.del(logStreamKey(jobId));
    bridge.faults.failNext(1, "reset");
    writer.append(rec("after"));
    await writer.end("ready");
    const texts = (await entries(jobId)).flatMap((entry) => entry.lines).map((l) => l.text);
    expect(texts).toEqual([
      "10 log lines were lost here: Redis lost them after storing them (it restarted without its data).",
      "after",
    ]);
    expect(writer.stats.linesLost).toBe(10);
    expect((await entries(jobId)).at(-1)?.end).toBe("ready");
  });
});
