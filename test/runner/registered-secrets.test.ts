import type { Redis } from "@upstash/redis";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { createSecretValues } from "../../src/shared/sanitize/secret-values.ts";
import { startUpstashBridge, type UpstashBridge } from "../../tools/upstash-bridge/bridge.ts";
import { createLogStreamer } from "../../worker-build-runner/log-streamer.ts";
import { createUpstashClient } from "../../worker-build-runner/redis.ts";
import { createRedisLogWriter } from "../../worker-build-runner/redis-writer.ts";
import { readLogLines, uniqueJobId } from "../support/redis.ts";

// Registered values through the runner's whole write path (line buffer, sanitizer, writer)
// into a real redis-server: what Redis holds is what every viewer and the archive get.
let bridge: UpstashBridge;
let redis: Redis;

beforeAll(async () => {
  bridge = await startUpstashBridge({ redisUrl: inject("redisUrl"), token: "registered-test" });
  redis = createUpstashClient({ url: bridge.url, token: bridge.token });
});

afterAll(async () => {
  await bridge.close();
});

function setup(label: string, secrets: string[] = []) {
  const jobId = uniqueJobId(label);
  const writer = createRedisLogWriter({ redis, jobId, logger: { warn: () => {} } });
  const streamer = createLogStreamer({ writer, secrets: createSecretValues(secrets) });
  return { jobId, streamer };
}

const stored = async (jobId: string): Promise<string> =>
  (await readLogLines(redis, jobId)).map((line) => line.text).join("\n");

// Every run of 4 characters of the value, so that no piece of it is left anywhere.
function expectNoPiece(text: string, value: string): void {
  for (let i = 0; i + 4 <= value.length; i++) expect(text).not.toContain(value.slice(i, i + 4));
}

describe("a registered value that straddles the runner's 16 KiB line split", () => {
  const value = "Qz7#Straddle-Secret-9k2!";

  it.each([
    ["whole in one chunk", 1],
    ["arriving a few bytes at a time", 7],
  ])("is masked, %s", async (_how, chunkSize) => {
    const { jobId, streamer } = setup(`straddle-${chunkSize}`, [value]);
    // No space to split at: the cut falls 16,384 characters in, inside the value.
    const line = `${"x".repeat(16_384 - 10)}${value}${"y".repeat(200)}\n`;
    for (let i = 0; i < line.length; i += chunkSize)
      streamer.onStdout(line.slice(i, i + chunkSize));
    await streamer.flush();
    const text = await stored(jobId);
    expectNoPiece(text, value);
    expect(text).toContain("[REDACTED]");
  });
});

describe("::add-mask:: in a build's output", () => {
  it("masks the value from then on, on stdout and stderr, and never stores it", async () => {
    const { jobId, streamer } = setup("add-mask");
    const value = "Run7ime-Registered-Value";
    streamer.onStdout(`::add-mask::${value}\n`);
    streamer.onStderr(`deploy key is ${value}\n`);
    streamer.onStdout(`url: https://example.com/?k=${encodeURIComponent(`${value}&`)}\n`);
    streamer.writeEvent(`system line with ${value}`);
    await streamer.flush();
    const text = await stored(jobId);
    expectNoPiece(text, value);
    expect(text.split("\n")).toEqual([
      "::add-mask::[REDACTED]",
      "deploy key is [REDACTED]",
      "url: https://example.com/?k=[REDACTED]%26",
      "system line with [REDACTED]",
    ]);
  });
});
