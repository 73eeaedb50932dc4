import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Stack, startStack } from "../../tools/dev/stack.ts";
import { type FaultMode, type FaultProxy, startFaultProxy } from "../support/fault-proxy.ts";
import {
  formatReport,
  runScenario,
  type ScenarioOptions,
  type ScenarioReport,
} from "../support/fault-scenario.ts";
import type { LogApi } from "../support/log-channels.ts";

// Faults injected from outside the processes of the real stack (redis-server, the Upstash
// bridge, the Worker in workerd, the runner with its local sandbox): signals to redis-server
// and the runner, and a TCP proxy between the runner and the bridge. Each build prints numbered
// lines; every channel (live SSE with real EventSource clients, history, logs.txt, the archive)
// must show each line once and in order, and the job must end as the build's exit code says.
// The one exception is a line Redis truly lost, and then a system line says how many.

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

interface Harness {
  stack: Stack;
  api: LogApi;
  proxy: FaultProxy | null;
  /** Between the runner and the Worker: its pushes (push socket and POST), wakes and archive calls. */
  workerProxy: FaultProxy | null;
  stop(): Promise<void>;
}

async function startHarness(options: {
  readonly persistence: "aof" | "none";
  readonly leaseMs: number;
  readonly graceMs: number;
  /** The Worker's MAX_VIEWER_LAG_BYTES; default 16 KiB, so the slow viewer must resume. */
  readonly viewerLagBytes?: number;
  /** workerd on disk behind a forwarder, so a scenario can kill and restart it. */
  readonly restartableWorker?: boolean;
}): Promise<Harness> {
  let proxy: FaultProxy | null = null;
  let workerProxy: FaultProxy | null = null;
  const stack = await startStack({
    restartableWorker: options.restartableWorker ?? false,
    runnerLeaseMs: options.leaseMs,
    runnerOutput: "ignore",
    redisPersistence: options.persistence,
    runnerUpstashUrl: async (bridgeUrl) => {
      proxy = await startFaultProxy(bridgeUrl);
      return proxy.url;
    },
    runnerWorkerUrl: async (workerUrl) => {
      workerProxy = await startFaultProxy(workerUrl);
      return workerProxy.url;
    },
    workerVars: {
      SSE_HEARTBEAT_MS: "1000",
      LEASE_LAPSE_GRACE_MS: String(options.graceMs),
      // Small, so the slow viewer is closed for lagging and must resume exactly.
      MAX_VIEWER_LAG_BYTES: String(options.viewerLagBytes ?? 16_384),
    },
  });
  // The Cron Trigger runs the sweep every minute; here every 2 s, so a wrong verdict shows.
  const sweeper = setInterval(() => {
    fetch(`${stack.workerUrl}/internal/sweep`, {
      method: "POST",
      headers: { Authorization: `Bearer ${stack.runnerToken}` },
    })
      .then((response) => response.body?.cancel())
      .catch(() => undefined);
  }, 2_000);
  return {
    stack,
    api: { workerUrl: stack.workerUrl, token: stack.signToken("user_faults") },
    get proxy() {
      return proxy;
    },
    get workerProxy() {
      return workerProxy;
    },
    async stop() {
      clearInterval(sweeper);
      await stack.stop();
      await proxy?.close();
      await workerProxy?.close();
    },
  };
}

function expectClean(report: ScenarioReport, status: string): void {
  console.log(formatReport(report));
  expect(report.status).toBe(status);
  expect(report.viewerStatuses.every((viewerStatus) => viewerStatus === status)).toBe(true);
  for (const channel of report.channels) {
    expect({ channel: channel.channel, duplicated: channel.duplicated }).toEqual({
      channel: channel.channel,
      duplicated: 0,
    });
    expect({ channel: channel.channel, outOfOrder: channel.outOfOrder }).toEqual({
      channel: channel.channel,
      outOfOrder: 0,
    });
    // A line may be missing only where Redis truly lost it, and then the log says so.
    expect({ channel: channel.channel, missing: channel.missing }).toEqual({
      channel: channel.channel,
      missing: Math.min(channel.missing, channel.announced),
    });
  }
}

function proxyFault(
  harness: Harness,
  mode: FaultMode,
  ms: number,
  to: "bridge" | "worker" = "bridge",
) {
  return async () => {
    const proxy = to === "bridge" ? harness.proxy : harness.workerProxy;
    if (proxy === null) throw new Error(`no proxy between the runner and the ${to}`);
    proxy.setMode(mode);
    await sleep(ms);
    proxy.setMode("pass");
  };
}

/** A scenario where nothing may be lost: every channel clean, the build ready, no loss announced. */
async function expectLossless(harness: Harness, options: ScenarioOptions): Promise<void> {
  const report = await runScenario(harness.stack, harness.api, options);
  expectClean(report, "ready");
  expect(report.channels.every((channel) => channel.announced === 0)).toBe(true);
}

/** A numbered build as fast as the sandbox's shell prints (a short pause every 50,000 lines). */
function expectLargeBuildClean(
  harness: Harness,
  lines: number,
  options: { readonly reconnectingViewer: boolean },
): Promise<void> {
  return expectLossless(harness, {
    name: `${lines.toLocaleString("en")} lines`,
    build: { lines, burst: 50_000, pauseSeconds: 0.05 },
    reconnectingViewer: options.reconnectingViewer,
    timeoutMs: 900_000,
  });
}

const build = (lines: number, seconds: number): ScenarioOptions["build"] => ({
  lines,
  burst: 50,
  pauseSeconds: Math.max(0.01, seconds / (lines / 50)),
});

describe("faults, redis-server with its append-only file", () => {
  let harness: Harness;
  beforeAll(async () => {
    harness = await startHarness({
      persistence: "aof",
      leaseMs: 4_000,
      graceMs: 60_000,
      restartableWorker: true,
    });
  }, 180_000);
  afterAll(async () => harness?.stop(), 60_000);

  it("no fault: a plain viewer, one that reconnects 20 times and one at 1 KB/s", async () => {
    await expectLossless(harness, {
      name: "no fault",
      build: build(300, 3),
      reconnectingViewer: true,
      slowViewerBytesPerSecond: 1024,
    });
  });

  it.each([
    ["blackhole", 5_000],
    ["reset", 5_000],
    ["half-open", 12_000],
    ["drop-answers", 5_000],
  ] as const)("the proxy between runner and bridge goes %s for %i ms", async (mode, ms) => {
    await expectLossless(harness, {
      name: `proxy ${mode} ${ms} ms`,
      build: build(2_000, ms / 1000 + 4),
      reconnectingViewer: true,
      fault: proxyFault(harness, mode, ms),
    });
  });

  // The runner's pushes go over its push socket to the job's object (POST when it cannot): a
  // socket reset, or one that swallows what it is sent or its answers, falls back to POST, and
  // while neither gets through the object reads Redis itself after its safety interval.
  it.each([
    ["reset", 5_000],
    ["half-open", 8_000],
    ["drop-answers", 5_000],
  ] as const)("the proxy between runner and Worker goes %s for %i ms", async (mode, ms) => {
    await expectLossless(harness, {
      name: `worker proxy ${mode} ${ms} ms`,
      build: build(2_000, ms / 1000 + 6),
      reconnectingViewer: true,
      fault: proxyFault(harness, mode, ms, "worker"),
    });
  });

  it.each([10_000, 30_000])("redis-server is stopped (SIGSTOP) for %i ms", async (ms) => {
    // Longer than the runner's lease (4 s): it re-takes the lease, and the sweep does not fail it.
    await expectLossless(harness, {
      name: `SIGSTOP redis-server ${ms} ms`,
      build: build(3_000, ms / 1000 + 5),
      reconnectingViewer: true,
      fault: async () => {
        await harness.stack.redisServer.signal("SIGSTOP");
        await sleep(ms);
        await harness.stack.redisServer.signal("SIGCONT");
      },
    });
  });

  it("redis-server is killed (SIGKILL) and restarted with its append-only file", async () => {
    const report = await runScenario(harness.stack, harness.api, {
      name: "SIGKILL redis-server, AOF",
      build: build(3_000, 8),
      reconnectingViewer: true,
      fault: async () => {
        await harness.stack.redisServer.signal("SIGKILL");
        await sleep(2_000);
        await harness.stack.redisServer.restart();
      },
    });
    // At most its last second is lost, and then the log says how many lines.
    expectClean(report, "ready");
  });

  it("workerd is killed (SIGKILL) mid-build and started again 3 s later", async () => {
    // Viewers reconnect with Last-Event-ID to the new object; the runner's pushes and archive
    // calls failed meanwhile; nothing is lost, for the lines were in Redis all along.
    await expectLossless(harness, {
      name: "SIGKILL workerd",
      build: build(3_000, 12),
      reconnectingViewer: true,
      fault: async () => {
        await sleep(1_000);
        await harness.stack.restartWorker(3_000);
      },
    });
  });

  it("a build of 150,000 numbered lines: its middle leaves Redis once archived", async () => {
    await expectLargeBuildClean(harness, 150_000, { reconnectingViewer: true });
  }, 900_000);
});

describe("faults, a 1,000,000-line build", () => {
  let harness: Harness;
  beforeAll(async () => {
    // The default lag bound (1 MiB): a 16 KiB one closes a viewer of a build this fast every
    // few hundred lines, which is the slow viewer's test above, not this one's.
    harness = await startHarness({
      persistence: "aof",
      leaseMs: 4_000,
      graceMs: 60_000,
      viewerLagBytes: 1_048_576,
    });
  }, 180_000);
  afterAll(async () => harness?.stop(), 60_000);

  it("every line in every channel, its middle out of Redis once archived", async () => {
    await expectLargeBuildClean(harness, 1_000_000, { reconnectingViewer: false });
  }, 1_200_000);
});

describe("faults, redis-server without persistence; the runner killed", () => {
  let harness: Harness;
  beforeAll(async () => {
    harness = await startHarness({ persistence: "none", leaseMs: 3_000, graceMs: 8_000 });
  }, 180_000);
  afterAll(async () => harness?.stop(), 60_000);

  it("redis-server is killed and restarts empty: the job stays readable and the loss is said", async () => {
    const report = await runScenario(harness.stack, harness.api, {
      name: "SIGKILL redis-server, no persistence",
      build: build(3_000, 8),
      fault: async () => {
        await sleep(1_000);
        await harness.stack.redisServer.signal("SIGKILL");
        await sleep(1_000);
        await harness.stack.redisServer.restart();
      },
    });
    expectClean(report, "ready");
    const history = report.channels.find((channel) => channel.channel === "history");
    // The count covers every line lost, the two stage lines before the build's own included.
    const missing = history?.missing ?? 0;
    expect(missing).toBeGreaterThan(0);
    expect(history?.announced).toBeGreaterThanOrEqual(missing);
    expect(history?.announced).toBeLessThanOrEqual(missing + 2);
  });

  it("the runner is killed (SIGKILL): the sweep fails the job and every line written is kept", async () => {
    const report = await runScenario(harness.stack, harness.api, {
      name: "SIGKILL the runner",
      build: build(3_000, 20),
      cutShort: true,
      fault: async () => {
        await sleep(2_000);
        await harness.stack.restartRunner();
      },
    });
    expectClean(report, "failed");
  });
});
