// What bench/fanout.ts prints: the table, the problems (loudly), the goals and the one
// `bench=fanout name=value ...` line.
import os from "node:os";
import type { DeliverySummary } from "./fanout-lines.ts";
import type { UsageReport } from "./fanout-proc.ts";
import type { AppendResult } from "./fanout-runner.ts";

export interface ScenarioResult {
  readonly label: string;
  /** How the object learned of new lines, or the seed-style baseline. */
  readonly mode: string;
  readonly viewers: number;
  readonly connectSeconds: number;
  readonly connectFailures: number;
  readonly appended: AppendResult;
  readonly delivery: DeliverySummary;
  readonly linesPerSecond: number;
  readonly eventsPerSecond: number;
  readonly readsPerSecond: number;
  /** Upstash commands/s while the viewers stayed and no line came. */
  readonly idleReadsPerSecond: number;
  /** Pushes the runner sent (push mode). */
  readonly pushes: number;
  readonly drops: number;
  readonly reconnects: number;
  readonly badFrames: number;
  /** Viewers that got the `done` event (NaN for the baseline, which has none). */
  readonly done: number;
  readonly wakes: { readonly sent: number; readonly failed: number; readonly slowestMs: number };
  readonly usage: UsageReport;
  /** This process's event-loop delay p99 (ms): how late viewers here may have read what arrived. */
  readonly loopDelayP99Ms: number;
  /** workerd's RSS before the viewers connected and once they all had. */
  readonly rssBeforeMb: number;
  readonly rssConnectedMb: number;
  /** The machine's 1-minute load average as the scenario ended (it has 2 cores, shared). */
  readonly loadAverage: number;
  readonly errors: readonly string[];
}

export const BASELINE = "baseline";

export interface RunDescription {
  readonly seconds: number;
  readonly entriesPerSecond: number;
  readonly linesPerEntry: number;
  readonly plannedEntries: number;
  readonly modes: readonly string[];
  readonly viewerCounts: readonly number[];
  readonly baselineCounts: readonly number[];
  /** Upstash commands in 2 s once every job had ended and every viewer had left. */
  readonly idleReads: number;
  readonly giveUpLateMs: number;
  readonly elapsedSeconds: number;
}

const P99_GOAL_MS = 250;
// The push's goals (issue 15): p99 at 1,000 viewers, Upstash reads per watched job.
const PUSH_P99_GOAL_MS = 100;
const PUSH_READS_GOAL = 0.5;
// "Reads that do not grow with viewers": at most this factor from the fewest to the most viewers.
const FLAT_READS_FACTOR = 1.25;
// Upstash bills $0.20 per 100,000 commands.
const DOLLARS_PER_COMMAND = 0.2 / 100_000;

const fixed = (value: number, digits = 0): string =>
  Number.isFinite(value) ? value.toFixed(digits) : "-";
const usageOf = (result: ScenarioResult, label: string) =>
  result.usage.processes.find((process) => process.label === label);
const keyOf = (mode: string, viewers: number): string => `${mode.replaceAll("-", "_")}_v${viewers}`;
/** workerd's CPU per delivered line (one line to one viewer), in microseconds. */
const cpuPerLineUs = (r: ScenarioResult): number =>
  ((usageOf(r, "workerd")?.cpuSeconds ?? Number.NaN) / r.delivery.delivered) * 1e6;

/** Prints everything; true when a problem (a missing or repeated line, a drop, ...) was found. */
export function printReport(results: readonly ScenarioResult[], run: RunDescription): boolean {
  console.log("");
  console.log(table(results));
  console.log("");
  console.log(
    "latency: append (runner's clock) to receipt (viewer's thread, same machine clock), over every viewer x line; warm p99: lines appended 2 s or more after the first; first p99: per line, its first receipt over the viewers (the path to the object, without the fan-out's spread)",
  );
  console.log(
    "reads/s: Upstash commands/s while appending, minus the XADDs; lines/s, events/s: received over all viewers",
  );
  console.log(
    "node lag p99: the main thread's event-loop delay (ms): the runner's writer and pusher and the Upstash bridge (and the baseline's pollers); push and poll viewers read on a thread of their own",
  );
  console.log(
    `cpu%: of one core (the machine has ${os.availableParallelism()}), over appends + drain; others: every process not part of this bench; run took ${fixed(run.elapsedSeconds)} s`,
  );
  const most = Math.max(...results.map((r) => r.viewers));
  const hourly = results
    .filter((r) => r.viewers === most || r.mode === BASELINE)
    .map((r) => {
      const commands = r.readsPerSecond * 3600;
      return `${r.label} ${fixed(commands / 1000)}k ($${fixed(commands * DOLLARS_PER_COMMAND, 2)})`;
    });
  console.log(`Upstash reads for one hour of one watched job: ${hourly.join("; ")}`);

  const contended = results.filter((r) => r.usage.othersCpuPercent > 25);
  if (contended.length > 0)
    console.log(
      `note: other processes used over 25% of a core during ${contended.map((r) => r.label).join(", ")}: those figures are pessimistic`,
    );
  const problems = results.flatMap((r) =>
    problemsOf(r, run).map((problem) => `${r.label}: ${problem}`),
  );
  if (Number.isFinite(run.idleReads) && run.idleReads > 0)
    problems.push(
      `${run.idleReads} Upstash commands in 2 s after every job ended and every viewer left`,
    );
  if (problems.length > 0) {
    console.log("");
    console.log("!!! PROBLEMS !!!");
    for (const problem of problems) console.log(`!!! ${problem}`);
  } else {
    console.log(
      `every viewer got every line exactly once, in order, then \`done\`; ${fixed(run.idleReads)} reads after all jobs ended`,
    );
  }

  const { fields, goals } = summaryFields(results, run);
  if (goals.length > 0) {
    console.log("");
    console.log("goals:");
    for (const goal of goals) console.log(`  ${goal}`);
  }
  console.log("");
  console.log(fields.join(" "));
  return problems.length > 0;
}

function table(results: readonly ScenarioResult[]): string {
  const header = [
    "scenario",
    "connect s",
    "delivered",
    "missing",
    "repeated",
    "drops",
    "done",
    "p50 ms",
    "p99 ms",
    "max ms",
    "warm p99",
    "first p99",
    "lines/s",
    "events/s",
    "reads/s",
    "idle reads/s",
    "workerd cpu%",
    "cpu µs/line",
    "node cpu%",
    "node lag p99",
    "others cpu%",
    "workerd MB before/connected/peak",
  ];
  const rows = results.map((r) => [
    r.label,
    fixed(r.connectSeconds, 1),
    `${r.delivery.delivered}/${r.viewers * r.delivery.expectedPerReader}`,
    String(r.delivery.missing),
    String(r.delivery.repeated),
    String(r.drops),
    Number.isNaN(r.done) ? "-" : `${r.done}/${r.viewers}`,
    fixed(r.delivery.latency.p50, 1),
    fixed(r.delivery.latency.p99, 1),
    fixed(r.delivery.latency.max, 1),
    fixed(r.delivery.warmLatency.p99, 1),
    fixed(r.delivery.firstLatency.p99, 1),
    fixed(r.linesPerSecond),
    fixed(r.eventsPerSecond),
    fixed(r.readsPerSecond, 1),
    fixed(r.idleReadsPerSecond, 2),
    fixed(usageOf(r, "workerd")?.cpuPercent ?? Number.NaN),
    r.mode === BASELINE ? "-" : fixed(cpuPerLineUs(r), 1),
    fixed(usageOf(r, "node")?.cpuPercent ?? Number.NaN),
    fixed(r.loopDelayP99Ms, 1),
    fixed(r.usage.othersCpuPercent),
    r.mode === BASELINE
      ? "-"
      : `${fixed(r.rssBeforeMb)}/${fixed(r.rssConnectedMb)}/${fixed(usageOf(r, "workerd")?.maxRssMb ?? Number.NaN)}`,
  ]);
  const widths = header.map((title, i) =>
    Math.max(title.length, ...rows.map((row) => (row[i] ?? "").length)),
  );
  const line = (cells: readonly string[]): string =>
    cells
      .map((cell, i) => (i === 0 ? cell.padEnd(widths[i] ?? 0) : cell.padStart(widths[i] ?? 0)))
      .join("  ");
  return [line(header), line(widths.map((width) => "-".repeat(width))), ...rows.map(line)].join(
    "\n",
  );
}

function problemsOf(r: ScenarioResult, run: RunDescription): string[] {
  const what: string[] = [];
  if (r.appended.overloaded)
    what.push(
      `OVERLOADED: appends fell over ${run.giveUpLateMs} ms behind and stopped after ${r.appended.entries} of ${run.plannedEntries} entries`,
    );
  if (r.connectFailures > 0) what.push(`${r.connectFailures} viewers failed to connect`);
  if (r.delivery.missing > 0) what.push(`${r.delivery.missing} lines MISSING`);
  if (r.delivery.repeated > 0) what.push(`${r.delivery.repeated} lines REPEATED or out of order`);
  if (r.drops > 0)
    what.push(
      `${r.drops} streams dropped by the server (${r.reconnects} reconnects with Last-Event-ID)`,
    );
  if (r.badFrames > 0) what.push(`${r.badFrames} unreadable frames`);
  if (!Number.isNaN(r.done) && r.done !== r.viewers)
    what.push(`${r.viewers - r.done} viewers never got \`done\``);
  if (r.wakes.failed > 0) what.push(`${r.wakes.failed} of ${r.wakes.sent} wake calls failed`);
  if (what.length > 0 && r.errors.length > 0) what.push(`first errors: ${r.errors.join(" | ")}`);
  return what;
}

function summaryFields(
  results: readonly ScenarioResult[],
  run: RunDescription,
): { fields: string[]; goals: string[] } {
  const byKey = new Map(results.map((r) => [keyOf(r.mode, r.viewers), r]));
  const goals: string[] = [];
  const fields = [
    `bench=fanout`,
    `seconds=${run.seconds}`,
    `entries_per_s=${run.entriesPerSecond}`,
    `lines_per_entry=${run.linesPerEntry}`,
  ];
  for (const r of results) {
    const key = keyOf(r.mode, r.viewers);
    fields.push(
      `${key}_p50_ms=${fixed(r.delivery.latency.p50, 1)}`,
      `${key}_p99_ms=${fixed(r.delivery.latency.p99, 1)}`,
      `${key}_warm_p99_ms=${fixed(r.delivery.warmLatency.p99, 1)}`,
      `${key}_first_p99_ms=${fixed(r.delivery.firstLatency.p99, 1)}`,
      `${key}_lines_per_s=${fixed(r.linesPerSecond)}`,
      `${key}_reads_per_s=${fixed(r.readsPerSecond, 1)}`,
    );
    fields.push(
      `${key}_missing=${r.delivery.missing}`,
      `${key}_repeated=${r.delivery.repeated}`,
      `${key}_load_1m=${fixed(r.loadAverage, 2)}`,
    );
    if (r.mode !== BASELINE)
      fields.push(
        `${key}_idle_reads_per_s=${fixed(r.idleReadsPerSecond, 2)}`,
        `${key}_workerd_cpu_pct=${fixed(usageOf(r, "workerd")?.cpuPercent ?? Number.NaN)}`,
        `${key}_workerd_cpu_us_per_line=${fixed(cpuPerLineUs(r), 1)}`,
      );
    if (Number.isFinite(r.pushes)) fields.push(`${key}_pushes=${r.pushes}`);
  }

  // The push against its goals, and against today's poll measured in the same run.
  for (const viewers of run.viewerCounts) {
    const push = byKey.get(keyOf("push", viewers));
    const poll = byKey.get(keyOf("poll", viewers));
    if (push === undefined) continue;
    const readsPass = push.readsPerSecond <= PUSH_READS_GOAL && push.idleReadsPerSecond === 0;
    goals.push(
      `push at ${viewers}: ${fixed(push.readsPerSecond, 2)} reads/s while lines flow, ${fixed(push.idleReadsPerSecond, 2)} idle (goal <= ${PUSH_READS_GOAL}, 0): ${readsPass ? "PASS" : "FAIL"}`,
    );
    if (viewers === 1000) {
      const p99Pass =
        push.delivery.latency.p99 <= PUSH_P99_GOAL_MS &&
        push.delivery.warmLatency.p99 <= PUSH_P99_GOAL_MS;
      fields.push(`goal_push_p99_le_${PUSH_P99_GOAL_MS}ms_v1000=${p99Pass ? "pass" : "fail"}`);
      goals.push(
        `push at 1,000: p99 ${fixed(push.delivery.latency.p99, 1)} ms cold, ${fixed(push.delivery.warmLatency.p99, 1)} ms warm (goal <= ${PUSH_P99_GOAL_MS}): ${p99Pass ? "PASS" : "FAIL"}`,
      );
    }
    if (poll !== undefined) {
      const ratio = cpuPerLineUs(push) / cpuPerLineUs(poll);
      fields.push(`cpu_per_line_ratio_push_to_poll_v${viewers}=${fixed(ratio, 2)}`);
      goals.push(
        `push at ${viewers}: workerd CPU per delivered line ${fixed(ratio, 2)}x poll's: ${ratio <= 1 ? "PASS" : "worse"}`,
      );
    }
  }

  // Where the baseline was not run (1,000 pollers are more than this process can drive), its
  // reads are projected from the largest one that was: one XRANGE per viewer per poll.
  const largestSeed = [...run.baselineCounts]
    .sort((a, b) => b - a)
    .map((viewers) => byKey.get(keyOf(BASELINE, viewers)))
    .find((r) => r !== undefined && !r.appended.overloaded);
  for (const viewers of run.viewerCounts) {
    const measured = byKey.get(keyOf(BASELINE, viewers));
    const projected = measured === undefined || measured.appended.overloaded;
    const seedReads = !projected
      ? measured.readsPerSecond
      : largestSeed === undefined
        ? Number.NaN
        : (largestSeed.readsPerSecond / largestSeed.viewers) * viewers;
    if (!Number.isFinite(seedReads)) continue;
    if (projected)
      fields.push(`${keyOf(BASELINE, viewers)}_reads_per_s_projected=${fixed(seedReads, 1)}`);
    for (const mode of run.modes) {
      const ours = byKey.get(keyOf(mode, viewers));
      if (ours !== undefined)
        fields.push(
          `read_ratio_${keyOf(mode, viewers)}${projected ? "_projected" : ""}=${fixed(seedReads / ours.readsPerSecond, 1)}`,
        );
    }
  }

  for (const mode of run.modes) {
    const fewest = byKey.get(keyOf(mode, Math.min(...run.viewerCounts)));
    const most = byKey.get(keyOf(mode, Math.max(...run.viewerCounts)));
    if (fewest !== undefined && most !== undefined && most !== fewest) {
      const growth = most.readsPerSecond / fewest.readsPerSecond;
      fields.push(
        `reads_growth_${keyOf(mode, fewest.viewers)}_to_${most.viewers}=${fixed(growth, 2)}`,
      );
      goals.push(
        `${mode}: reads/s at ${most.viewers} viewers are ${fixed(growth, 2)}x those at ${fewest.viewers}: ${growth <= FLAT_READS_FACTOR ? "flat, PASS" : "they grow, FAIL"}`,
      );
    }
    const thousand = byKey.get(keyOf(mode, 1000));
    if (thousand !== undefined) {
      const pass = thousand.delivery.latency.p99 < P99_GOAL_MS && thousand.delivery.missing === 0;
      fields.push(`goal_p99_under_${P99_GOAL_MS}ms_${keyOf(mode, 1000)}=${pass ? "pass" : "fail"}`);
      goals.push(
        `${mode}: p99 at 1,000 viewers ${fixed(thousand.delivery.latency.p99, 1)} ms (warm ${fixed(thousand.delivery.warmLatency.p99, 1)} ms) against ${P99_GOAL_MS} ms: ${pass ? "PASS" : "FAIL"}`,
      );
    }
  }

  const totals = results.reduce(
    (sum, r) => ({
      missing: sum.missing + r.delivery.missing,
      repeated: sum.repeated + r.delivery.repeated,
      drops: sum.drops + r.drops,
    }),
    { missing: 0, repeated: 0, drops: 0 },
  );
  fields.push(
    `missing_lines=${totals.missing}`,
    `repeated_lines=${totals.repeated}`,
    `dropped_streams=${totals.drops}`,
    `idle_reads=${fixed(run.idleReads)}`,
  );
  return { fields, goals };
}
