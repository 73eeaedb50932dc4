import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Stack, startStack } from "../../tools/dev/stack.ts";
import { formatReport, runScenario } from "../support/fault-scenario.ts";
import type { LogApi } from "../support/log-channels.ts";

// Past the live copy's byte cap, with no fault at all: the build prints far faster than the
// archive (the Worker, a segment per 1,000 lines here) takes its lines, and the live copy is
// small (1 MiB, its tail 2,000 lines). Nothing may leave Redis before the archive has it: the
// runner holds the build at the cap until the archive catches up, so every channel shows every
// line once and in order, and no line is announced lost.
let stack: Stack;
let api: LogApi;

beforeAll(async () => {
  stack = await startStack({
    runnerOutput: "ignore",
    // So the second case can kill workerd, the archive with it, while the build waits.
    restartableWorker: true,
    runnerVars: { LIVE_HEAD_LINES: "100", LIVE_TAIL_LINES: "2000", LIVE_MAX_MB: "1" },
    workerVars: { ARCHIVE_SEGMENT_LINES: "1000" },
  });
  api = { workerUrl: stack.workerUrl, token: stack.signToken("user_live_cap") };
}, 120_000);

afterAll(async () => {
  await stack?.stop();
}, 60_000);

describe("a build past the live copy's byte cap", () => {
  it("waits for the archive instead of losing lines: every channel complete, nothing announced lost", async () => {
    // About 5 MB of entries in Redis's encoding: five times the cap, in a few seconds.
    const report = await runScenario(stack, api, {
      name: "past the byte cap",
      build: { lines: 80_000, burst: 20_000, pauseSeconds: 0.01 },
      reconnectingViewer: true,
      timeoutMs: 240_000,
    });
    console.log(formatReport(report));
    expect(report.status).toBe("ready");
    expect(report.viewerStatuses.every((status) => status === "ready")).toBe(true);
    for (const channel of report.channels)
      expect(channel, channel.channel).toMatchObject({
        seen: 80_000,
        missing: 0,
        duplicated: 0,
        outOfOrder: 0,
        announced: 0,
      });
  }, 300_000);

  it("waits out the archive's outage (workerd killed and restarted) without losing a line", async () => {
    const report = await runScenario(stack, api, {
      name: "past the byte cap, workerd killed",
      build: { lines: 80_000, burst: 2_000, pauseSeconds: 0.05 },
      reconnectingViewer: true,
      fault: () => stack.restartWorker(3_000),
      timeoutMs: 240_000,
    });
    console.log(formatReport(report));
    expect(report.status).toBe("ready");
    for (const channel of report.channels)
      expect(channel, channel.channel).toMatchObject({
        seen: 80_000,
        missing: 0,
        duplicated: 0,
        outOfOrder: 0,
      });
  }, 300_000);
});
