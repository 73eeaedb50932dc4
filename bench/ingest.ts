// npm run bench:ingest: lines/s from onStdout to Redis, Upstash commands per 1,000 lines and
// newline-to-Redis latency, through the Upstash bridge with 20 ms added per request, beside a
// seed-style writer (XADD then EXPIRE, awaited per line) measured in the same run.
// The trickle (a line every 10 ms) runs twice: as the writer batches with no Worker to push to
// (newline to Redis), and as it batches while pushing to the real Worker in local workerd with
// one SSE viewer watching (newline to viewer, the latency a user sees).
import { randomUUID } from "node:crypto";
import os from "node:os";
import { performance } from "node:perf_hooks";
import { encodeEntryFields } from "../src/shared/entry.ts";
import { logStreamKey } from "../src/shared/keys.ts";
import { createLineSanitizer } from "../src/shared/sanitize/line-sanitizer.ts";
import { startUpstashBridge } from "../tools/upstash-bridge/bridge.ts";
import { startRedisServer } from "../tools/upstash-bridge/redis-server.ts";
import { createLivePusher } from "../worker-build-runner/live-push.ts";
import { createLogStreamer } from "../worker-build-runner/log-streamer.ts";
import { workerNotifier } from "../worker-build-runner/notifier.ts";
import { createUpstashClient } from "../worker-build-runner/redis.ts";
import { createRedisLogWriter } from "../worker-build-runner/redis-writer.ts";
import { putRunningJob, startBenchWorker } from "./bench-worker.ts";
import { createDeliveryLog, lineText, nowMs } from "./fanout-lines.ts";
import { createViewerPool } from "./fanout-viewers.ts";
import { buildOutputLines } from "./fixture.ts";

const LATENCY_MS = 20;
const BURST_LINES = 20_000;
const SEED_LINES = 200;
const TRICKLE_LINES = 1_000;
const TRICKLE_GAP_MS = 10;
const OWNER = "user_ingest_bench";
const RUNNER_TOKEN = `runner-${randomUUID()}`;

const quantile = (sorted: number[], q: number): number =>
  sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? NaN;

const redisServer = await startRedisServer();
const bridge = await startUpstashBridge({ redisUrl: redisServer.url, token: "bench" });
bridge.faults.latencyMs = LATENCY_MS;
const redis = createUpstashClient({ url: bridge.url, token: bridge.token });
const sample = buildOutputLines();
const lineAt = (i: number): string => sample[i % sample.length] ?? "";
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, Math.max(0, ms)));

/** `XADD 143, EXPIRE 1`: where the commands went, most first. */
const byName = (counts: Readonly<Record<string, number>>): string =>
  Object.entries(counts)
    .sort((a, b) => b[1] - a[1])
    .map(([name, count]) => `${name} ${count}`)
    .join(", ");

/** One line every TRICKLE_GAP_MS on a fixed schedule (no drift), stamped with its newline time. */
async function trickleInto(onStdout: (chunk: string) => void, appendedAt: number[]) {
  const start = nowMs();
  for (let i = 0; i < TRICKLE_LINES; i++) {
    await sleep(start + i * TRICKLE_GAP_MS - nowMs());
    const at = nowMs();
    appendedAt.push(at);
    onStdout(`${lineText(i, at)}\n`);
  }
}

const { worker, signer } = await startBenchWorker({
  bench: "ingest",
  bridge,
  runnerToken: RUNNER_TOKEN,
});

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

  // 2. Trickle with no Worker to push to: newline to Redis acknowledging it.
  const appendedAt: number[] = [];
  const latencies: number[] = [];
  let acknowledged = 0;
  const trickleWriter = createRedisLogWriter({
    redis,
    jobId: "bench-trickle",
    onWritten: ({ lines }) => {
      const at = nowMs();
      for (let i = 0; i < lines; i++) latencies.push(at - (appendedAt[acknowledged++] ?? at));
    },
  });
  const trickle = createLogStreamer({ writer: trickleWriter });
  bridge.resetStats();
  await trickleInto(trickle.onStdout, appendedAt);
  await trickle.flush();
  const trickleCommandsPer1000 = (bridge.stats.commands / TRICKLE_LINES) * 1000;
  const trickleByCommand = bridge.commandCounts;
  latencies.sort((a, b) => a - b);

  // 3. Trickle pushed to the Worker, one viewer watching: newline to the viewer's receipt.
  const pushJobId = `bench-trickle-push-${randomUUID().slice(0, 8)}`;
  await putRunningJob(redis, pushJobId, OWNER);
  const delivery = createDeliveryLog(1, TRICKLE_LINES);
  const viewer = createViewerPool({
    origin: worker.url,
    path: `/api/jobs/${pushJobId}/logs/stream`,
    token: signer.sign(OWNER, 600),
    log: delivery,
    count: 1,
    maxReconnects: 0,
  });
  if ((await viewer.open(1, 20_000)) > 0)
    throw new Error(`the viewer could not connect: ${viewer.errors().join("; ")}`);
  await sleep(300);
  const pusher = createLivePusher({
    jobId: pushJobId,
    transport: workerNotifier({ workerUrl: worker.url, runnerToken: RUNNER_TOKEN }),
  });
  const pushWriter = createRedisLogWriter({
    redis,
    jobId: pushJobId,
    onWritten: pusher.written,
    flushTiming: pusher.flushTiming,
  });
  const pushed = createLogStreamer({ writer: pushWriter });
  bridge.resetStats();
  const pushStartedAt = nowMs();
  await trickleInto(pushed.onStdout, []);
  await pushed.flush();
  const pushSeconds = (nowMs() - pushStartedAt) / 1000;
  const deadline = nowMs() + 5_000;
  while (!delivery.allComplete(TRICKLE_LINES) && nowMs() < deadline) await sleep(20);
  const pushBridgeCommands = bridge.stats.commands;
  const pushByCommand = bridge.commandCounts;
  // The writer's commands so far, in the same window as the bridge's (its end comes after).
  const pushWriterCommandsSoFar = pushWriter.stats.commands;
  const pushSummary = delivery.summary(TRICKLE_LINES, pushStartedAt);
  await pushWriter.end("ready");
  await pusher.close();
  viewer.close();
  const pushWriterCommands = pushWriter.stats.commands;
  const pushCommandsPer1000 = (pushWriterCommands / TRICKLE_LINES) * 1000;
  // Whatever else reached the bridge meanwhile was the Durable Object reading.
  const objectReads = pushBridgeCommands - pushWriterCommandsSoFar;

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
    `trickle pushed, 1 viewer: newline-to-viewer p50 ${pushSummary.latency.p50.toFixed(1)} ms, p99 ${pushSummary.latency.p99.toFixed(1)} ms, max ${pushSummary.latency.max.toFixed(1)} ms; ${pushSummary.missing} missing, ${pushSummary.repeated} repeated; writer ${pushCommandsPer1000.toFixed(0)} commands per 1,000 lines (${pushWriter.stats.requests} requests, ${(TRICKLE_LINES / Math.max(1, pushWriter.stats.requests)).toFixed(1)} lines each); ${pusher.stats.pushes} pushes (${pusher.stats.keepalives} keepalives, ${pusher.stats.failed} failed); the object read Redis ${objectReads} times in ${pushSeconds.toFixed(1)} s`,
  );
  console.log(
    `trickle commands by name: ${byName(trickleByCommand)}; pushed (writer and object): ${byName(pushByCommand)}`,
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
      `trickle_push_commands_per_1000_lines=${pushCommandsPer1000.toFixed(0)}`,
      `trickle_push_viewer_p50_ms=${pushSummary.latency.p50.toFixed(1)}`,
      `trickle_push_viewer_p99_ms=${pushSummary.latency.p99.toFixed(1)}`,
      `trickle_push_missing=${pushSummary.missing}`,
      `trickle_push_repeated=${pushSummary.repeated}`,
      `trickle_push_pushes=${pusher.stats.pushes}`,
      `trickle_push_object_reads=${objectReads}`,
      `goal_trickle_push_commands_le_150=${pushCommandsPer1000 <= 150 ? "pass" : "fail"}`,
      `goal_trickle_push_viewer_p99_lt_100ms=${pushSummary.latency.p99 < 100 ? "pass" : "fail"}`,
      `load_average_1m=${os.loadavg()[0]?.toFixed(2)}`,
      `seed_lines_per_s=${seedLinesPerSecond.toFixed(1)}`,
      `seed_commands_per_1000_lines=${seedCommandsPer1000.toFixed(0)}`,
      `throughput_ratio=${(burstLinesPerSecond / seedLinesPerSecond).toFixed(1)}`,
      `command_ratio=${(seedCommandsPer1000 / commandsPer1000).toFixed(1)}`,
    ].join(" "),
  );
} finally {
  await worker.dispose();
  await bridge.close();
  await redisServer.stop();
}
