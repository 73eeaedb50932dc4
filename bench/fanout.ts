// npm run bench:fanout: live fan-out of one job's log to 1, 100 and 1,000 SSE viewers through the
// real Worker and its JobStream Durable Object in local workerd, while the runner side appends
// lines to the Redis Stream through the Upstash bridge.
// Per viewer count: delivery latency from append to receipt (p50/p99/max over every viewer x
// line), lines/s delivered, every line exactly once and in order per viewer, Upstash commands/s
// spent reading while lines flow and while the job is watched but idle, and workerd's CPU per
// delivered line. Beside it, in the same run, the seed's design: every viewer polls XRANGE
// itself every 100 ms.
//
//   npm run bench:fanout [-- --seconds 10 --viewers 1,100,1000 --modes push,poll
//                           --baseline 1,100 --entries-per-s 20 --lines-per-entry 10
//                           --idle-seconds 6 --warm-up-seconds 2]
//
// The viewers of push and poll read on a worker thread (fanout-viewer-thread.ts), not on the
// event loop of the runner's writer and pusher and the bridge: production's viewers are
// browsers, elsewhere.
//
// Modes, i.e. how the object learns of new lines:
//   push  the runner's writer (worker-build-runner/redis-writer.ts, adaptive batching) with its
//         pusher (live-push.ts): each batch goes to POST /internal/jobs/:id/entries right after
//         its XADD; the object reads Redis only for a gap or after 5 s without a push. Latency
//         is from the line's append to the writer, so it includes the writer's batching.
//   poll  before pushes: each entry XADDed as it comes, the object polling Redis on its alarm
//         (every 100 ms while lines flow, backing off to 1 s when idle), woken by the runner
//         when lines follow a quiet spell (here, the first append)
//
// How workerd runs: wrangler's programmatic dev API (tools/dev/workerd.ts: `unstable_DevEnv`,
// what `unstable_startWorker` wraps) in this process, rather than a `wrangler dev` child. It
// builds the bundle `wrangler deploy` would from wrangler.toml (nodejs_compat, the SQLite
// Durable Object, enable_request_signal) and runs it in workerd with the bindings passed in
// (they win over .dev.vars); there is no child CLI to find and kill. Viewers connect to the
// user worker's own port, not to wrangler's hot-reload proxy: that proxy is a second workerd
// that pipes every request and SSE stream through one Durable Object of its own, a hop
// production lacks (in a trial at 1,000 viewers it roughly doubled p50). workerd's CPU and
// memory are read from /proc.
import { randomUUID } from "node:crypto";
import os from "node:os";
import { monitorEventLoopDelay } from "node:perf_hooks";
import { parseArgs } from "node:util";
import { Redis } from "@upstash/redis";
import { startUpstashBridge, type UpstashBridge } from "../tools/upstash-bridge/bridge.ts";
import { startRedisServer } from "../tools/upstash-bridge/redis-server.ts";
import { createLivePusher } from "../worker-build-runner/live-push.ts";
import { workerNotifier } from "../worker-build-runner/notifier.ts";
import { createUpstashClient } from "../worker-build-runner/redis.ts";
import { createRedisLogWriter } from "../worker-build-runner/redis-writer.ts";
import { putRunningJob, startBenchWorker } from "./bench-worker.ts";
import { createDeliveryLog } from "./fanout-lines.ts";
import { commandOf, descendantPids, listenerOf, rssMb, sampleUsage } from "./fanout-proc.ts";
import { BASELINE, printReport, type ScenarioResult } from "./fanout-report.ts";
import {
  type AppendPlan,
  type AppendResult,
  startPollers,
  streamAppender,
  writerAppender,
} from "./fanout-runner.ts";
import { createTeardown } from "./fanout-teardown.ts";
import { startViewerThread } from "./fanout-viewer-thread.ts";

const MODES = ["push", "poll"] as const;
type Mode = (typeof MODES)[number];
const isMode = (value: string): value is Mode => (MODES as readonly string[]).includes(value);

const { values: flags } = parseArgs({
  options: {
    seconds: { type: "string", default: "10" },
    viewers: { type: "string", default: "1,100,1000" },
    modes: { type: "string", default: MODES.join(",") },
    // 1,000 pollers are 10,000 requests/s: more than this process can send beside the bridge on 2 cores.
    baseline: { type: "string", default: "1,100" },
    "entries-per-s": { type: "string", default: "20" },
    "lines-per-entry": { type: "string", default: "10" },
    // Longer than the object's safety poll (5 s): a read it makes while idle is counted.
    "idle-seconds": { type: "string", default: "6" },
    // Before the scenarios: each mode at the largest viewer count this long, unmeasured (0: none).
    "warm-up-seconds": { type: "string", default: "2" },
  },
});

function positiveInts(name: string, text: string): number[] {
  const list = text === "" ? [] : text.split(",").map((item) => Number(item.trim()));
  if (list.some((value) => !Number.isInteger(value) || value < 1))
    throw new RangeError(
      `--${name} takes positive integers separated by commas, got ${JSON.stringify(text)}`,
    );
  return list;
}
function positiveInt(name: string, text: string): number {
  const [value, ...rest] = positiveInts(name, text);
  if (value === undefined || rest.length > 0)
    throw new RangeError(`--${name} takes one positive integer, got ${JSON.stringify(text)}`);
  return value;
}

const seconds = positiveInt("seconds", flags.seconds);
const idleSeconds = positiveInt("idle-seconds", flags["idle-seconds"]);
const warmUpSeconds =
  flags["warm-up-seconds"] === "0" ? 0 : positiveInt("warm-up-seconds", flags["warm-up-seconds"]);
const entriesPerSecond = positiveInt("entries-per-s", flags["entries-per-s"]);
const plan: AppendPlan = {
  entries: Math.round(seconds * entriesPerSecond),
  linesPerEntry: positiveInt("lines-per-entry", flags["lines-per-entry"]),
  intervalMs: 1000 / entriesPerSecond,
};
const viewerCounts = positiveInts("viewers", flags.viewers);
const baselineCounts = positiveInts("baseline", flags.baseline);
const requestedModes = flags.modes.split(",").filter((mode) => mode !== "");
const unknownModes = requestedModes.filter((mode) => !isMode(mode));
if (unknownModes.length > 0)
  throw new RangeError(`--modes takes ${MODES.join(", ")}; unknown: ${unknownModes.join(", ")}`);
const modes = requestedModes.filter(isMode);
const linesPerReader = plan.entries * plan.linesPerEntry;
const warmUpPlan: AppendPlan = {
  ...plan,
  entries: Math.min(plan.entries, Math.round(warmUpSeconds * entriesPerSecond)),
};

const OWNER = "user_fanout_owner";
const RUNNER_TOKEN = `runner-${randomUUID()}`;
const BASELINE_POLL_MS = 100;
// The runner's quiet spell before it wakes the object (worker-build-runner/run-job.ts).
const QUIET_WAKE_MS = 2_000;
const CONNECT_CONCURRENCY = 50;
const CONNECT_TIMEOUT_MS = 20_000;
// After the last viewer's first frame, so the object has finished admitting them all.
const SETTLE_MS = 300;
// Lines appended this long after the first append are "warm": the object's idle backoff (up to
// 1 s between polls before any line exists) is over by then.
const WARM_AFTER_MS = 2_000;
const DRAIN_TIMEOUT_MS = 5_000;
const DONE_TIMEOUT_MS = 5_000;
// Lets workerd finish closing the previous scenario's streams before the next one opens.
const PAUSE_BETWEEN_MS = 1_000;
// The appender stops if it falls this far behind: this machine is then the limit, not the design.
const GIVE_UP_LATE_MS = 3_000;
// The whole run stops (and tears down) past this, whatever is going on.
const RUN_DEADLINE_MS = 8 * 60_000;
const TEARDOWN_STEP_MS = 15_000;

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Waits until `ready()` or `timeoutMs`; true if it became ready. */
async function waitFor(
  ready: () => boolean | Promise<boolean>,
  timeoutMs: number,
): Promise<boolean> {
  const deadline = performance.now() + timeoutMs;
  while (!(await ready())) {
    if (performance.now() > deadline) return false;
    await sleep(20);
  }
  return true;
}

const teardown = createTeardown({
  label: "bench:fanout",
  deadlineMs: RUN_DEADLINE_MS,
  stepTimeoutMs: TEARDOWN_STEP_MS,
});

/** A Clerk-like RS256 session token (Clerk's claims; azp unchecked: no authorized parties set). */

interface WorkerdUnderTest {
  /** `http://127.0.0.1:PORT` of the Worker. */
  readonly url: string;
  /** The workerd process that runs the Worker and its Durable Objects. */
  readonly pid: number;
  /** wrangler's hot-reload proxy's workerd (idle: nothing goes through it). */
  readonly proxyPid: number | undefined;
}

interface Setup {
  readonly bridge: UpstashBridge;
  readonly workerd: WorkerdUnderTest;
  readonly redisPid: number | undefined;
  /** The runner's client (writes). */
  readonly runnerRedis: Redis;
  /** The seed-style viewers' client (reads). */
  readonly pollerRedis: Redis;
  readonly token: string;
  readonly runTag: string;
}

// Every scenario gets its own job (and so its own Durable Object), even one that repeats another.
let scenarioCount = 0;

function usageTargets(setup: Setup): Array<{ label: string; pid: number }> {
  const targets = [
    { label: "workerd", pid: setup.workerd.pid },
    { label: "node", pid: process.pid },
  ];
  if (setup.redisPid !== undefined) targets.push({ label: "redis", pid: setup.redisPid });
  if (setup.workerd.proxyPid !== undefined)
    targets.push({ label: "proxy", pid: setup.workerd.proxyPid });
  return targets;
}

/** The runner's wake calls: fire and forget, as the runner sends them, but counted and timed. */
function waker(setup: Setup, jobId: string) {
  const pending: Array<Promise<void>> = [];
  let sent = 0;
  let failed = 0;
  let slowestMs = 0;
  return {
    wake(): void {
      sent++;
      const start = performance.now();
      pending.push(
        fetch(`${setup.workerd.url}/internal/jobs/${jobId}/wake`, {
          method: "POST",
          headers: { Authorization: `Bearer ${RUNNER_TOKEN}` },
          signal: AbortSignal.timeout(10_000),
        })
          .then(async (response) => {
            await response.arrayBuffer();
            if (response.status !== 204) failed++;
          })
          .catch(() => {
            failed++;
          })
          .finally(() => {
            slowestMs = Math.max(slowestMs, performance.now() - start);
          }),
      );
    },
    async settle() {
      await Promise.all(pending);
      return { sent, failed, slowestMs };
    },
  };
}

async function runFanout(
  setup: Setup,
  mode: Mode,
  viewers: number,
  scenario: { readonly plan: AppendPlan; readonly idleSeconds: number } = { plan, idleSeconds },
): Promise<ScenarioResult> {
  const jobId = `fanout-${mode}-${viewers}-${setup.runTag}-${++scenarioCount}`;
  await putRunningJob(setup.runnerRedis, jobId, OWNER);
  // On a thread of their own, as viewers are elsewhere than the runner in production.
  const pool = startViewerThread({
    origin: setup.workerd.url,
    path: `/api/jobs/${jobId}/logs/stream`,
    token: setup.token,
    count: viewers,
    maxReconnects: 3,
    capacityPerReader: linesPerReader,
  });
  const wakes = waker(setup, jobId);
  try {
    const rssBeforeMb = rssMb(setup.workerd.pid);
    const connectStart = performance.now();
    const connectFailures = await pool.open(CONNECT_CONCURRENCY, CONNECT_TIMEOUT_MS);
    const connectSeconds = (performance.now() - connectStart) / 1000;
    await sleep(SETTLE_MS);
    const rssConnectedMb = rssMb(setup.workerd.pid);

    let lastAppendAt = Number.NEGATIVE_INFINITY;
    const afterAppend = (at: number): void => {
      if (mode === "poll" && at - lastAppendAt > QUIET_WAKE_MS) wakes.wake();
      lastAppendAt = at;
    };
    const quiet = { warn: () => undefined };
    const pusher =
      mode === "push"
        ? createLivePusher({
            jobId,
            transport: workerNotifier({ workerUrl: setup.workerd.url, runnerToken: RUNNER_TOKEN }),
            logger: quiet,
          })
        : null;
    const appender = pusher
      ? writerAppender(
          createRedisLogWriter({
            redis: setup.runnerRedis,
            jobId,
            onWritten: pusher.written,
            flushTiming: pusher.flushTiming,
            logger: quiet,
          }),
          pusher,
        )
      : streamAppender(setup.runnerRedis, jobId);
    const eventsBefore = (await pool.status(0)).logEvents;
    const usage = sampleUsage(usageTargets(setup));
    const loopDelay = monitorEventLoopDelay({ resolution: 10 });
    loopDelay.enable();
    setup.bridge.resetStats();
    const appended = await appender.run(scenario.plan, {
      afterAppend,
      giveUpLateMs: GIVE_UP_LATE_MS,
    });
    const commands = setup.bridge.stats.commands;
    await waitFor(async () => (await pool.status(appended.lines)).complete, DRAIN_TIMEOUT_MS);
    const usageReport = usage.stop();
    loopDelay.disable();
    const delivery = await pool.summary(appended.lines, appended.startedAt + WARM_AFTER_MS);
    const events = (await pool.status(0)).logEvents - eventsBefore;

    // Watched but idle: the viewers stay, no line comes. Push mode should read nothing.
    setup.bridge.resetStats();
    const idleStart = performance.now();
    await sleep(scenario.idleSeconds * 1000);
    const idleReadsPerSecond =
      setup.bridge.stats.commands / ((performance.now() - idleStart) / 1000);

    await appender.end("ready");
    await waitFor(
      async () => (await pool.status(0)).done === viewers - connectFailures,
      DONE_TIMEOUT_MS,
    );
    const status = await pool.status(0);
    const deliverySeconds = (delivery.lastReceiptAt - appended.startedAt) / 1000;
    return {
      label: `${mode} ${viewers}`,
      mode,
      viewers,
      connectSeconds,
      connectFailures,
      appended,
      delivery,
      linesPerSecond: delivery.delivered / deliverySeconds,
      eventsPerSecond: events / deliverySeconds,
      readsPerSecond: readsPerSecond(commands, appended),
      idleReadsPerSecond,
      pushes: pusher?.stats.pushes ?? Number.NaN,
      drops: status.drops,
      reconnects: status.reconnects,
      badFrames: status.badFrames,
      done: status.done,
      wakes: await wakes.settle(),
      usage: usageReport,
      loopDelayP99Ms: loopDelay.percentile(99) / 1e6,
      rssBeforeMb,
      rssConnectedMb,
      loadAverage: os.loadavg()[0] ?? Number.NaN,
      errors: status.errors,
    };
  } finally {
    await pool.close();
    await wakes.settle();
  }
}

async function runBaseline(setup: Setup, viewers: number): Promise<ScenarioResult> {
  const jobId = `fanout-baseline-${viewers}-${setup.runTag}-${++scenarioCount}`;
  const log = createDeliveryLog(viewers, linesPerReader);
  const pollers = startPollers({
    redis: setup.pollerRedis,
    jobId,
    count: viewers,
    intervalMs: BASELINE_POLL_MS,
    log,
    maxPolls: Math.ceil(
      (seconds * 1000 + GIVE_UP_LATE_MS + DRAIN_TIMEOUT_MS + 10_000) / BASELINE_POLL_MS,
    ),
  });
  try {
    // Every poller has started (they start staggered over one interval).
    await sleep(2 * BASELINE_POLL_MS);
    const appender = streamAppender(setup.runnerRedis, jobId);
    const usage = sampleUsage(usageTargets(setup));
    const loopDelay = monitorEventLoopDelay({ resolution: 10 });
    loopDelay.enable();
    setup.bridge.resetStats();
    const appended = await appender.run(plan, { giveUpLateMs: GIVE_UP_LATE_MS });
    const commands = setup.bridge.stats.commands;
    await waitFor(() => log.allComplete(appended.lines), DRAIN_TIMEOUT_MS);
    const usageReport = usage.stop();
    loopDelay.disable();
    const delivery = log.summary(appended.lines, appended.startedAt + WARM_AFTER_MS);
    const deliverySeconds = (delivery.lastReceiptAt - appended.startedAt) / 1000;
    return {
      label: `baseline ${viewers}`,
      mode: BASELINE,
      viewers,
      connectSeconds: Number.NaN,
      connectFailures: 0,
      appended,
      delivery,
      linesPerSecond: delivery.delivered / deliverySeconds,
      eventsPerSecond: Number.NaN,
      readsPerSecond: readsPerSecond(commands, appended),
      idleReadsPerSecond: Number.NaN,
      pushes: Number.NaN,
      drops: 0,
      reconnects: 0,
      badFrames: 0,
      done: Number.NaN,
      wakes: { sent: 0, failed: 0, slowestMs: 0 },
      usage: usageReport,
      loopDelayP99Ms: loopDelay.percentile(99) / 1e6,
      rssBeforeMb: Number.NaN,
      rssConnectedMb: Number.NaN,
      loadAverage: os.loadavg()[0] ?? Number.NaN,
      errors: pollers.errors() > 0 ? [`${pollers.errors()} polls failed`] : [],
    };
  } finally {
    await pollers.stop();
  }
}

/** Commands/s the readers sent while lines were appended: the bridge's count minus the XADDs. */
function readsPerSecond(commands: number, appended: AppendResult): number {
  return (commands - appended.commands) / ((appended.endedAt - appended.startedAt) / 1000);
}

// The run --------------------------------------------------------------------------------

const results: ScenarioResult[] = [];
let idleReads = Number.NaN;
let failed = false;
const started = performance.now();
const elapsed = (): string => `${((performance.now() - started) / 1000).toFixed(0)} s`;
const progress = (r: ScenarioResult): void => {
  console.log(
    `  ${r.label}: p50 ${r.delivery.latency.p50.toFixed(1)} ms, p99 ${r.delivery.latency.p99.toFixed(1)} ms, ${r.delivery.missing} missing, ${r.readsPerSecond.toFixed(1)} reads/s, load ${r.loadAverage.toFixed(2)} (${elapsed()})`,
  );
};
try {
  const redisServer = await startRedisServer();
  teardown.add("redis-server", () => redisServer.stop());
  // Debian's redis-server is a link to redis-check-rdb, which is what /proc names.
  const redisPid = descendantPids(process.pid).find((pid) =>
    ["redis-server", "redis-check-rdb"].includes(commandOf(pid) ?? ""),
  );
  const bridge = await startUpstashBridge({
    redisUrl: redisServer.url,
    token: `bench-${randomUUID()}`,
  });
  teardown.add("the Upstash bridge", () => bridge.close());
  const { worker, signer } = await startBenchWorker({
    bench: "fanout",
    bridge,
    runnerToken: RUNNER_TOKEN,
    vars: { MAX_VIEWERS_PER_JOB: "2000" },
  });
  teardown.add("workerd", () => worker.dispose());
  const workerds = descendantPids(process.pid).filter((pid) => commandOf(pid) === "workerd");
  const workerdPid = listenerOf(workerds, Number(new URL(worker.url).port));
  if (workerdPid === undefined)
    throw new Error(
      `none of this process's workerd processes (${workerds.join(", ")}) listens on ${worker.url}`,
    );
  const workerd: WorkerdUnderTest = {
    url: worker.url,
    pid: workerdPid,
    proxyPid: workerds.find((pid) => pid !== workerdPid),
  };
  const setup: Setup = {
    bridge,
    workerd,
    redisPid,
    runnerRedis: createUpstashClient({ url: bridge.url, token: bridge.token }),
    // As the Worker's client reads (src/redis.ts), minus auto-pipelining: one request per poll,
    // as separate per-viewer handlers would send.
    pollerRedis: new Redis({
      url: bridge.url,
      token: bridge.token,
      automaticDeserialization: false,
      enableTelemetry: false,
      enableAutoPipelining: false,
      retry: { retries: 2, backoff: (attempt) => 50 * 2 ** attempt },
    }),
    token: signer.sign(OWNER, RUN_DEADLINE_MS / 1000 + 60),
    runTag: randomUUID().slice(0, 8),
  };
  console.log(
    `workerd (pid ${workerd.pid}) at ${workerd.url}, ready after ${elapsed()}; ` +
      `per scenario ${plan.entries} entries x ${plan.linesPerEntry} lines, one entry every ${plan.intervalMs.toFixed(0)} ms (${seconds} s)`,
  );

  // The process warmed once, not each object: workerd's heap grows to its working size and its
  // code is compiled on its first thousand streams, and the scenario that came first paid for
  // it. With push first at 1,000 viewers its CPU per line was 2.5 µs and p99 123 ms, with poll
  // first 2.3 µs and 112 ms: the order, not the mode, decided. Every scenario still starts with
  // a new job, a new Durable Object and new connections.
  const mostViewers = Math.max(0, ...viewerCounts);
  if (warmUpSeconds > 0 && mostViewers > 0) {
    const warmUpStart = performance.now();
    for (const mode of modes) {
      const warm = await runFanout(setup, mode, mostViewers, { plan: warmUpPlan, idleSeconds: 0 });
      // Unmeasured, not unchecked: a line lost or repeated there is as wrong as anywhere.
      if (warm.delivery.missing > 0 || warm.delivery.repeated > 0 || warm.errors.length > 0)
        throw new Error(
          `the warm-up (${warm.label}) lost ${warm.delivery.missing} and repeated ${warm.delivery.repeated} lines: ${warm.errors.join("; ")}`,
        );
    }
    console.log(
      `  warm-up (unmeasured): ${modes.join(", ")} at ${mostViewers} viewers, ${warmUpSeconds} s each (${((performance.now() - warmUpStart) / 1000).toFixed(0)} s)`,
    );
    await sleep(PAUSE_BETWEEN_MS);
  }

  // Push and poll side by side at each viewer count, so that drift in a shared machine's speed
  // falls on both alike.
  for (const viewers of viewerCounts) {
    for (const mode of modes) {
      const result = await runFanout(setup, mode, viewers);
      results.push(result);
      progress(result);
      await sleep(PAUSE_BETWEEN_MS);
    }
  }
  for (const viewers of baselineCounts) {
    const result = await runBaseline(setup, viewers);
    results.push(result);
    progress(result);
  }

  // Every job has ended and every viewer has gone: nothing may read Redis any more. An object
  // may have one alarm pending (at most the idle poll maximum, 1 s, away): wait that out first.
  await sleep(1_200);
  bridge.resetStats();
  await sleep(2_000);
  idleReads = bridge.stats.commands;
} catch (error) {
  console.error("bench:fanout failed:", error);
  failed = true;
} finally {
  await teardown.run();
}

if (results.length > 0) {
  const problems = printReport(results, {
    seconds,
    entriesPerSecond,
    linesPerEntry: plan.linesPerEntry,
    plannedEntries: plan.entries,
    modes,
    viewerCounts,
    baselineCounts,
    idleReads,
    giveUpLateMs: GIVE_UP_LATE_MS,
    elapsedSeconds: (performance.now() - started) / 1000,
  });
  failed ||= problems;
}
process.exitCode = failed ? 1 : 0;
