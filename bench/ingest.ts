// npm run bench:ingest: lines/s from onStdout to Redis, Upstash commands per 1,000 lines and
// newline-to-Redis latency, through the Upstash bridge with 20 ms added per request, beside a
// seed-style writer (XADD then EXPIRE, awaited per line) measured in the same run.
import { performance } from "node:perf_hooks";
import { encodeEntryFields } from "../src/shared/entry.ts";
import { logStreamKey } from "../src/shared/keys.ts";
import { createLineSanitizer } from "../src/shared/sanitize/line-sanitizer.ts";
import { startUpstashBridge } from "../tools/upstash-bridge/bridge.ts";
import { startRedisServer } from "../tools/upstash-bridge/redis-server.ts";
import { createLogStreamer } from "../worker-build-runner/log-streamer.ts";
import { createUpstashClient } from "../worker-build-runner/redis.ts";
import { createRedisLogWriter } from "../worker-build-runner/redis-writer.ts";
import { buildOutputLines } from "./fixture.ts";

const LATENCY_MS = 20;
const BURST_LINES = 20_000;
const SEED_LINES = 200;
const TRICKLE_LINES = 200;
const TRICKLE_GAP_MS = 10;

const quantile = (sorted: number[], q: number): number =>
  sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? NaN;

const redisServer = await startRedisServer();
const bridge = await startUpstashBridge({ redisUrl: redisServer.url, token: "bench" });
bridge.faults.latencyMs = LATENCY_MS;
const redis = createUpstashClient({ url: bridge.url, token: bridge.token });
const sample = buildOutputLines();
const lineAt = (i: number): string => sample[i % sample.length] ?? "";

try {
  // 1. Burst through the real pipeline: LineBuffer -> sanitizer -> batched writer.
  bridge.resetStats();
  const burstWriter = createRedisLogWriter({ redis, jobId: "bench-burst" });
  const burst = createLogStreamer({ writer: burstWriter });
  let start = performance.now();
  for (let i = 0; i < BURST_LINES; i += 100) {
    let chunk = "";
    for (let j = i; j < i + 100; j++) chunk += `${lineAt(j)}\n`;
    burst.onStdout(chunk);
  }
  await burst.flush();
  const burstSeconds = (performance.now() - start) / 1000;
  const burstLinesPerSecond = burstWriter.stats.linesWritten / burstSeconds;
  const commandsPer1000 = (bridge.stats.commands / burstWriter.stats.linesWritten) * 1000;
  const requestsPer1000 = (bridge.stats.requests / burstWriter.stats.linesWritten) * 1000;

  // 2. Trickle: one line every 10 ms; latency from the newline to Redis acknowledging it.
  const appendedAt: number[] = [];
  const latencies: number[] = [];
  let acknowledged = 0;
  const trickleWriter = createRedisLogWriter({
    redis,
    jobId: "bench-trickle",
    onWritten: ({ lines }) => {
      const at = performance.now();
      for (let i = 0; i < lines; i++) latencies.push(at - (appendedAt[acknowledged++] ?? at));
    },
  });
  const trickle = createLogStreamer({ writer: trickleWriter });
  bridge.resetStats();
  for (let i = 0; i < TRICKLE_LINES; i++) {
    appendedAt.push(performance.now());
    trickle.onStdout(`trickle line ${i}\n`);
    await new Promise((resolve) => setTimeout(resolve, TRICKLE_GAP_MS));
  }
  await trickle.flush();
  const trickleCommandsPer1000 = (bridge.stats.commands / TRICKLE_LINES) * 1000;
  latencies.sort((a, b) => a - b);

  // 3. Seed-style baseline in the same run: sanitize, XADD, then EXPIRE, each awaited, per line.
  const seedKey = logStreamKey("bench-seed");
  const sanitizer = createLineSanitizer();
  bridge.resetStats();
  start = performance.now();
  for (let i = 0; i < SEED_LINES; i++) {
    const text = sanitizer.sanitize(lineAt(i));
    if (text === null) continue;
    await redis.xadd(
      seedKey,
      "*",
      encodeEntryFields([{ ts: new Date().toISOString(), source: "stdout", phase: "build", text }]),
    );
    await redis.expire(seedKey, 86_400);
  }
  const seedSeconds = (performance.now() - start) / 1000;
  const seedLinesPerSecond = SEED_LINES / seedSeconds;
  const seedCommandsPer1000 = (bridge.stats.commands / SEED_LINES) * 1000;

  console.log(`bridge latency: ${LATENCY_MS} ms per request`);
  console.log(
    `burst:    ${burstWriter.stats.linesWritten} lines in ${burstSeconds.toFixed(2)} s = ${burstLinesPerSecond.toFixed(0)} lines/s; ${commandsPer1000.toFixed(2)} commands and ${requestsPer1000.toFixed(2)} requests per 1,000 lines`,
  );
  console.log(
    `trickle:  ${TRICKLE_LINES} lines, one per ${TRICKLE_GAP_MS} ms: newline-to-Redis latency p50 ${quantile(latencies, 0.5).toFixed(1)} ms, p99 ${quantile(latencies, 0.99).toFixed(1)} ms, max ${(latencies.at(-1) ?? NaN).toFixed(1)} ms; ${trickleCommandsPer1000.toFixed(0)} commands per 1,000 lines`,
  );
  console.log(
    `seed:     ${SEED_LINES} lines in ${seedSeconds.toFixed(2)} s = ${seedLinesPerSecond.toFixed(1)} lines/s; ${seedCommandsPer1000.toFixed(0)} commands per 1,000 lines`,
  );
  console.log(
    `ratio:    ${(burstLinesPerSecond / seedLinesPerSecond).toFixed(0)}x the seed's throughput, ${(seedCommandsPer1000 / commandsPer1000).toFixed(0)}x fewer commands at burst`,
  );
  console.log(
    [
      `bench=ingest`,
      `latency_ms=${LATENCY_MS}`,
      `burst_lines_per_s=${burstLinesPerSecond.toFixed(0)}`,
      `burst_commands_per_1000_lines=${commandsPer1000.toFixed(2)}`,
      `trickle_p50_ms=${quantile(latencies, 0.5).toFixed(1)}`,
      `trickle_p99_ms=${quantile(latencies, 0.99).toFixed(1)}`,
      `trickle_commands_per_1000_lines=${trickleCommandsPer1000.toFixed(0)}`,
      `seed_lines_per_s=${seedLinesPerSecond.toFixed(1)}`,
      `seed_commands_per_1000_lines=${seedCommandsPer1000.toFixed(0)}`,
      `throughput_ratio=${(burstLinesPerSecond / seedLinesPerSecond).toFixed(1)}`,
      `command_ratio=${(seedCommandsPer1000 / commandsPer1000).toFixed(1)}`,
    ].join(" "),
  );
} finally {
  await bridge.close();
  await redisServer.stop();
}
