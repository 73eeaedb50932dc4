// npm run bench:page: the build page in Debian's chromium against the whole local system
// (tools/dev/stack.ts), beside the seed's viewer page (bench/fixtures/seed-log-viewer.html,
// served in its place on the same URL) in the same run.
// Per page: time to first line (navigation to the first log row with text, opening a build with
// 1,000 lines of history), then main-thread long tasks (PerformanceObserver "longtask", > 50 ms)
// while 200,000 lines stream in live (400 entries of 500, written as the runner writes them),
// and the time until the last one is on screen. The lines are real FORCE_COLOR build output
// (bench/fixtures/build-output.log) through the sanitizer, so the page paints real style spans.
//
//   npm run bench:page [-- --lines 200000 --history 1000]
import { readFile } from "node:fs/promises";
import { parseArgs } from "node:util";
import type { Page } from "playwright-core";
import { encodeEntryFields, type LogRecord } from "../src/shared/entry.ts";
import { logStreamKey } from "../src/shared/keys.ts";
import { createLineSanitizer } from "../src/shared/sanitize/line-sanitizer.ts";
import { launchChromium } from "../test/support/chromium.ts";
import { createJob, testRedis } from "../test/support/jobs.ts";
import { devSignInUrl, startStack } from "../tools/dev/stack.ts";
import { figuresLine } from "./figures.ts";

const { values } = parseArgs({
  options: {
    lines: { type: "string", default: "200000" },
    history: { type: "string", default: "1000" },
    // Lines without their spans: what colour costs the page, by difference.
    plain: { type: "boolean", default: false },
    // Prints where the build page's main thread spent its time while streaming (CPU profile).
    profile: { type: "boolean", default: false },
  },
});
const TOTAL = Number(values.lines);
const HISTORY = Number(values.history);
const PER_ENTRY = 500;
const USER = "user_bench_page";

const fixture = await readFile(new URL("./fixtures/build-output.log", import.meta.url), "utf8");
const sanitizer = createLineSanitizer();
const sample = fixture
  .split("\n")
  .flatMap((raw) => sanitizer.sanitizeStyled(raw) ?? [])
  .map((line) => (values.plain ? { text: line.text } : line));
const styled = sample.filter((line) => line.spans !== undefined).length;
const seedPage = await readFile(
  new URL("./fixtures/seed-log-viewer.html", import.meta.url),
  "utf8",
);

// Installed before the page's own script: long tasks, and when the first log row has text.
const PROBE = `
window.__bench = { longTasks: [], firstLineAt: null };
new PerformanceObserver((list) => {
  for (const entry of list.getEntries()) window.__bench.longTasks.push([entry.startTime, entry.duration]);
}).observe({ type: "longtask", buffered: true });
const seen = () => {
  const row = document.querySelector("#rows > div[data-index] .text");
  if (window.__bench.firstLineAt === null && row && row.textContent !== "") window.__bench.firstLineAt = performance.now();
  return window.__bench.firstLineAt !== null;
};
document.addEventListener("DOMContentLoaded", () => {
  const observer = new MutationObserver(() => { if (seen()) observer.disconnect(); });
  observer.observe(document.getElementById("rows"), { childList: true, subtree: true, characterData: true });
});`;

// Polled from here (the DevTools protocol), not with waitForFunction: the build page's CSP has
// no 'unsafe-eval', which waitForFunction's string predicates need.
async function until(page: Page, expression: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await page.evaluate(expression))) {
    if (Date.now() > deadline) throw new Error(`bench:page: timed out waiting for ${expression}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

interface Figures {
  /** The renderer main thread's tasks while streaming, in all (trace). */
  readonly mainThreadMs: number;
  readonly layoutMs: number;
  readonly layouts: number;
  readonly styleMs: number;
  readonly ttflMs: number;
  readonly longTasks: number;
  readonly longTaskMs: number;
  readonly longTaskMaxMs: number;
  readonly streamSeconds: number;
}

const stack = await startStack({ runnerOutput: "ignore" });
const chromium = await launchChromium();
try {
  const redis = testRedis({
    UPSTASH_REDIS_REST_URL: stack.bridge.url,
    UPSTASH_REDIS_REST_TOKEN: stack.bridge.token,
  });
  const signIn = await chromium.context.newPage();
  await signIn.goto(devSignInUrl(stack.workerUrl, stack.signToken(USER, 3600), "/healthz"));
  await signIn.close();

  let ms = Date.now();
  const append = async (jobId: string, from: number, count: number, last?: string) => {
    const records: LogRecord[] = [];
    const ts = new Date().toISOString();
    for (let i = 0; i < count; i++) {
      const line = sample[(from + i) % sample.length] ?? { text: "-" };
      const isLast = last !== undefined && i === count - 1;
      records.push({
        ts,
        source: "stdout",
        phase: "build",
        ...(isLast ? { text: last } : line),
      });
    }
    await redis.xadd(logStreamKey(jobId), `${++ms}-0`, encodeEntryFields(records, from));
  };

  const run = async (label: string, seed: boolean): Promise<Figures> => {
    const jobId = `bench_page_${label}_${Date.now().toString(36)}`;
    await createJob(redis, jobId, USER);
    for (let n = 0; n < HISTORY; n += PER_ENTRY)
      await append(jobId, n, Math.min(PER_ENTRY, HISTORY - n));
    const page: Page = await chromium.context.newPage();
    await page.addInitScript({ content: PROBE });
    if (seed)
      // Only the page's own URL (its API calls, /api/jobs/<id>..., go through).
      await page.route(`${stack.workerUrl}/jobs/${jobId}`, (route) =>
        route.fulfill({ status: 200, contentType: "text/html; charset=utf-8", body: seedPage }),
      );
    await page.goto(`${stack.workerUrl}/jobs/${jobId}`);
    await until(page, "window.__bench.firstLineAt !== null", 60_000);
    const ttflMs = (await page.evaluate("window.__bench.firstLineAt")) as number;
    await until(page, "document.getElementById('connection').dataset.state === 'live'", 60_000);
    // Both pages are traced while streaming (the same overhead on each): the renderer's main
    // thread time (its tasks: script, style, layout, paint) is the work itself, which the
    // long-task count only samples past 50 ms on a busy machine. --profile adds a JS profile.
    const cdp = await chromium.context.newCDPSession(page);
    const profiling = values.profile && !seed;
    const trace: { name: string; ph: string; dur?: number; tid: number }[] = [];
    cdp.on(
      "Tracing.dataCollected",
      ({ value }) => void trace.push(...(value as unknown as typeof trace)),
    );
    const traced = new Promise((resolve) => cdp.once("Tracing.tracingComplete", resolve));
    if (profiling) {
      await cdp.send("Profiler.enable");
      await cdp.send("Profiler.start");
    }
    await cdp.send("Tracing.start", {
      categories: "devtools.timeline,disabled-by-default-devtools.timeline",
      transferMode: "ReportEvents",
    });
    const startedAt = (await page.evaluate("performance.now()")) as number;
    const finalText = `the last of ${TOTAL} lines`;
    for (let n = 0; n < TOTAL; n += PER_ENTRY) {
      const count = Math.min(PER_ENTRY, TOTAL - n);
      await append(jobId, HISTORY + n, count, n + count >= TOTAL ? finalText : undefined);
    }
    await until(
      page,
      `document.querySelector("#rows > div:last-child .text")?.textContent === ${JSON.stringify(finalText)}`,
      300_000,
    );
    const endedAt = (await page.evaluate("performance.now()")) as number;
    await cdp.send("Tracing.end");
    await traced;
    if (profiling) {
      const { profile } = await cdp.send("Profiler.stop");
      const self = new Map<string, number>();
      const interval =
        (profile.endTime - profile.startTime) / Math.max(1, profile.samples?.length ?? 1);
      const byId = new Map(profile.nodes.map((node) => [node.id, node]));
      for (const id of profile.samples ?? []) {
        const frame = byId.get(id)?.callFrame;
        const name = `${frame?.functionName || "(anonymous)"}:${frame?.lineNumber ?? -1}`;
        self.set(name, (self.get(name) ?? 0) + interval / 1000);
      }
      for (const [name, time] of [...self].sort((a, b) => b[1] - a[1]).slice(0, 12))
        console.log(`    ${time.toFixed(0).padStart(6)} ms  ${name}`);
    }
    // The renderer's main thread: the one that ran the most Layout events.
    const byThread = new Map<number, number>();
    for (const event of trace)
      if (event.name === "Layout") byThread.set(event.tid, (byThread.get(event.tid) ?? 0) + 1);
    const main = [...byThread].sort((a, b) => b[1] - a[1])[0]?.[0];
    const totals = new Map<string, { ms: number; count: number }>();
    for (const event of trace) {
      if (event.tid !== main || event.ph !== "X" || event.dur === undefined) continue;
      const total = totals.get(event.name) ?? { ms: 0, count: 0 };
      total.ms += event.dur / 1000;
      total.count += 1;
      totals.set(event.name, total);
    }
    if (profiling) {
      console.log("    renderer main thread (trace, inclusive):");
      for (const [name, total] of [...totals].sort((a, b) => b[1].ms - a[1].ms).slice(0, 10))
        console.log(`    ${total.ms.toFixed(0).padStart(6)} ms  ${name} (${total.count})`);
    }
    const traceFigure = (name: string) => totals.get(name) ?? { ms: 0, count: 0 };
    const tasks = ((await page.evaluate("window.__bench.longTasks")) as [number, number][]).filter(
      ([start]) => start >= startedAt && start <= endedAt,
    );
    await page.close();
    return {
      ttflMs: Math.round(ttflMs),
      longTasks: tasks.length,
      longTaskMs: Math.round(tasks.reduce((sum, [, duration]) => sum + duration, 0)),
      longTaskMaxMs: Math.round(Math.max(0, ...tasks.map(([, duration]) => duration))),
      mainThreadMs: Math.round(traceFigure("RunTask").ms),
      layoutMs: Math.round(traceFigure("Layout").ms),
      layouts: traceFigure("Layout").count,
      styleMs: Math.round(traceFigure("UpdateLayoutTree").ms),
      streamSeconds: Number(((endedAt - startedAt) / 1000).toFixed(2)),
    };
  };

  console.log(
    `bench:page: ${TOTAL.toLocaleString("en-US")} lines streamed live after ${HISTORY.toLocaleString("en-US")} of history; lines from real FORCE_COLOR output (${styled} of ${sample.length} sample lines carry spans)`,
  );
  // The seed's page first, then this one: the same stack, the same writer, the same lines.
  const baseline = await run("seed", true);
  const current = await run("page", false);
  for (const [name, f] of [
    ["seed page (baseline)", baseline],
    ["build page", current],
  ] as const)
    console.log(
      `  ${name.padEnd(21)} first line ${f.ttflMs} ms; while streaming: ${f.longTasks} long tasks, ${f.longTaskMs} ms in all, longest ${f.longTaskMaxMs} ms; main thread ${f.mainThreadMs} ms (layout ${f.layoutMs} ms in ${f.layouts}, style ${f.styleMs} ms); last line on screen after ${f.streamSeconds} s`,
    );
  const ratio = (a: number, b: number) => (b === 0 ? (a === 0 ? 1 : Infinity) : a / b);
  const figures = {
    page_ttfl_ms: current.ttflMs,
    baseline_ttfl_ms: baseline.ttflMs,
    page_long_tasks: current.longTasks,
    page_long_task_ms: current.longTaskMs,
    page_long_task_max_ms: current.longTaskMaxMs,
    page_main_ms: current.mainThreadMs,
    baseline_main_ms: baseline.mainThreadMs,
    page_layout_ms: current.layoutMs,
    baseline_layout_ms: baseline.layoutMs,
    page_layouts: current.layouts,
    baseline_layouts: baseline.layouts,
    baseline_long_tasks: baseline.longTasks,
    baseline_long_task_ms: baseline.longTaskMs,
    page_stream_s: current.streamSeconds,
    baseline_stream_s: baseline.streamSeconds,
    ttfl_ratio: ratio(current.ttflMs, baseline.ttflMs).toFixed(2),
    long_task_ms_ratio: ratio(current.longTaskMs, baseline.longTaskMs).toFixed(2),
    main_ms_ratio: ratio(current.mainThreadMs, baseline.mainThreadMs).toFixed(2),
    layout_ms_ratio: ratio(current.layoutMs, baseline.layoutMs).toFixed(2),
  };
  console.log(
    `  ratio (build page / seed page): first line ${figures.ttfl_ratio}x, long-task time ${figures.long_task_ms_ratio}x, main-thread time ${figures.main_ms_ratio}x, layout time ${figures.layout_ms_ratio}x`,
  );
  console.log(figuresLine(figures));
} finally {
  await chromium.close();
  await stack.stop();
}
