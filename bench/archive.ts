// npm run bench:archive: a 1,000,000-line build through the whole local system (tools/dev/
// stack.ts: redis-server behind the Upstash bridge, the Worker with R2 in local workerd, the
// runner with the local sandbox). The build prints numbered lines as fast as it can; the runner
// writes them to Redis, keeps head and tail live and asks the Worker to archive every 10,000.
//
// Figures: peak RSS (VmHWM) of the runner and of workerd; time from the job's end to its
// complete archive; history page (500 lines) p50/p99 from Redis (head and tail) and from the
// archive (the trimmed middle), with Upstash commands per page; logs.txt MB/s and an audit of
// its lines (missing / duplicated / out of order). Baseline in the same run: a history page
// the way the whole-object archive served it (download the whole log, gunzip, parse every line,
// filter), timed on the same log rebuilt in this process.
//
//   npm run bench:archive [-- --lines 1000000 --pages 40]

import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { gunzipSync, gzipSync } from "node:zlib";
import { Redis } from "@upstash/redis";
import { parseArchiveState } from "../src/shared/archive-state.ts";
import type { JobRecord } from "../src/shared/job.ts";
import { archiveStateKey, logStreamKey } from "../src/shared/keys.ts";
import { startStack } from "../tools/dev/stack.ts";
import { commandOf, descendantPids, listenerOf } from "./fanout-proc.ts";
import { figuresLine } from "./figures.ts";

const { values } = parseArgs({
  options: {
    lines: { type: "string", default: "1000000" },
    pages: { type: "string", default: "40" },
  },
});
const expected = Number(values.lines);
const pageCount = Number(values.pages);

const numbered = (i: number) => `line ${String(i).padStart(7, "0")} of the numbered build`;
const numberOf = (text: string) => {
  const match = /line (\d{7}) of the numbered build$/.exec(text);
  return match?.[1] === undefined ? null : Number(match[1]);
};

function peakRssMb(pid: number | undefined): number {
  if (pid === undefined) return Number.NaN;
  try {
    const match = /^VmHWM:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return match?.[1] === undefined ? Number.NaN : Number(match[1]) / 1024;
  } catch {
    return Number.NaN;
  }
}

const percentile = (sorted: number[], p: number) =>
  sorted[Math.min(sorted.length - 1, Math.floor((sorted.length - 1) * p))] ?? Number.NaN;
const round = (value: number, digits = 1) => Number(value.toFixed(digits));

const stack = await startStack({ runnerOutput: "ignore" });
try {
  const token = stack.signToken("user_bench_archive", 3600);
  const api = (path: string, init: RequestInit = {}) =>
    fetch(`${stack.workerUrl}${path}`, {
      ...init,
      headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/json" },
    });
  const redis = new Redis({
    url: stack.bridge.url,
    token: stack.bridge.token,
    automaticDeserialization: false,
  });
  const workerds = descendantPids(process.pid).filter((pid) => commandOf(pid) === "workerd");
  const workerdPid = listenerOf(workerds, Number(new URL(stack.workerUrl).port));
  const runnerPid = stack.runner.child.pid;

  // The build: numbered lines in 64 KiB writes, waiting for stdout to drain.
  const script = `let i=0;const f=()=>{let s="";while(i<${expected}&&s.length<65536){s+="line "+String(i).padStart(7,"0")+" of the numbered build\\n";i++}if(s)process.stdout.write(s,f)};f()`;
  const created = await api("/api/jobs", {
    method: "POST",
    body: JSON.stringify({
      steps: [{ name: "Numbered", phase: "build", command: `node -e '${script}'` }],
    }),
  });
  if (created.status !== 201) throw new Error(`POST /api/jobs answered ${created.status}`);
  const { id: jobId } = (await created.json()) as { id: string };
  const started = performance.now();
  let job: JobRecord;
  let endedAt = 0;
  for (;;) {
    job = (await (await api(`/api/jobs/${jobId}`)).json()) as JobRecord;
    if (endedAt === 0 && (job.status === "ready" || job.status === "failed"))
      endedAt = performance.now();
    if (job.archived_at) break;
    if (performance.now() - started > 30 * 60_000) throw new Error("the build did not finish");
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  const archivedAt = performance.now();
  const buildS = (endedAt - started) / 1000;
  const endToArchiveS =
    (Date.parse(job.archived_at ?? "") - Date.parse(job.finished_at ?? "")) / 1000;
  const state = parseArchiveState(await redis.get(archiveStateKey(jobId)));
  const liveEntries = await redis.xlen(logStreamKey(jobId));
  const runnerPeak = peakRssMb(runnerPid);
  const workerdPeak = peakRssMb(workerdPid);

  interface Page {
    lines: { text: string; cursor: string; gap?: unknown }[];
    has_more: boolean;
    cursors: { before: string | null; after: string | null };
  }
  const timePages = async (start: string, direction: "after" | "before", count: number) => {
    const times: number[] = [];
    let cursor = start;
    const commandsBefore = stack.bridge.stats.commands;
    for (let i = 0; i < count; i++) {
      const t = performance.now();
      const page = (await (
        await api(`/api/jobs/${jobId}/logs?limit=500&${direction}=${cursor}`)
      ).json()) as Page;
      times.push(performance.now() - t);
      const next = direction === "after" ? page.cursors.after : page.cursors.before;
      if (!page.has_more || next === null) break;
      cursor = next;
    }
    const commands = (stack.bridge.stats.commands - commandsBefore) / times.length;
    return { times, commands };
  };
  // From Redis: the newest pages backward (the live tail).
  const tail = (await (await api(`/api/jobs/${jobId}/logs?limit=500`)).json()) as Page;
  const fromRedis = await timePages(tail.cursors.before ?? "", "before", pageCount);
  // From the archive: backward from where the tail begins (the middle left Redis).
  const oldest = await redis.xrange(logStreamKey(jobId), "-", "+", 1);
  const tailStart = (await redis.xrevrange(logStreamKey(jobId), "+", "-", 101)) as unknown as [
    string,
  ][];
  const tailFirstId = tailStart.at(-1)?.[0] ?? "";
  const fromArchive = await timePages(`${tailFirstId}:0`, "before", pageCount);
  void oldest;

  // logs.txt, whole, streamed; audited line by line.
  const t0 = performance.now();
  const text = await (await api(`/api/jobs/${jobId}/logs.txt`)).text();
  const textS = (performance.now() - t0) / 1000;
  const seen = new Uint8Array(expected);
  let missing = 0;
  let duplicated = 0;
  let outOfOrder = 0;
  let last = -1;
  for (const row of text.split("\n")) {
    const n = numberOf(row);
    if (n === null || n >= expected) continue;
    if (seen[n] === 1) duplicated += 1;
    seen[n] = 1;
    if (n < last) outOfOrder += 1;
    last = n;
  }
  for (let i = 0; i < expected; i++) if (seen[i] === 0) missing += 1;

  // Baseline: the whole-object archive, one download and parse per history page.
  const ts = new Date().toISOString();
  const rows: string[] = [];
  for (let i = 0; i < expected; i++)
    rows.push(
      JSON.stringify({
        ts,
        source: "stdout",
        phase: "build",
        text: numbered(i),
        cursor: `1-${Math.floor(i / 500)}:${i % 500}`,
      }),
    );
  const whole = gzipSync(`${rows.join("\n")}\n`);
  rows.length = 0;
  const baseline: number[] = [];
  for (let i = 0; i < 5; i++) {
    const t = performance.now();
    const lines = gunzipSync(whole)
      .toString("utf8")
      .split("\n")
      .filter(Boolean)
      .map((row) => JSON.parse(row) as { text: string });
    const middle = Math.floor(expected / 2);
    const page = lines.slice(middle, middle + 500);
    if (page.length !== 500) throw new Error("baseline page is short");
    baseline.push(performance.now() - t);
  }
  const sorted = (values: number[]) => [...values].sort((a, b) => a - b);
  const redisTimes = sorted(fromRedis.times);
  const archiveTimes = sorted(fromArchive.times);
  const baselineSorted = sorted(baseline);
  const mb = Buffer.byteLength(text) / 1024 / 1024;
  const figures = {
    expected_lines: expected,
    archived_lines: state?.lines ?? 0,
    archive_complete: state?.complete ?? false,
    segments: state?.segments ?? 0,
    live_entries_after_end: liveEntries,
    build_s: round(buildS),
    end_to_archive_s: round(endToArchiveS, 2),
    end_to_archive_seen_s: round((archivedAt - endedAt) / 1000, 2),
    runner_peak_rss_mb: round(runnerPeak),
    workerd_peak_rss_mb: round(workerdPeak),
    page_redis_p50_ms: round(percentile(redisTimes, 0.5)),
    page_redis_p99_ms: round(percentile(redisTimes, 0.99)),
    page_redis_commands: round(fromRedis.commands, 2),
    page_archive_p50_ms: round(percentile(archiveTimes, 0.5)),
    page_archive_p99_ms: round(percentile(archiveTimes, 0.99)),
    page_archive_commands: round(fromArchive.commands, 2),
    baseline_whole_object_page_p50_ms: round(percentile(baselineSorted, 0.5)),
    archive_page_speedup: round(percentile(baselineSorted, 0.5) / percentile(archiveTimes, 0.5), 1),
    logs_txt_mb: round(mb),
    logs_txt_mb_per_s: round(mb / textS),
    logs_txt_missing: missing,
    logs_txt_duplicated: duplicated,
    logs_txt_out_of_order: outOfOrder,
  };
  console.log(`1,000,000-line build (${expected} lines), job ${jobId}`);
  console.log(
    `  build ${figures.build_s} s; archive complete ${figures.end_to_archive_s} s after the end (${figures.segments} segments, ${figures.archived_lines} lines); ${liveEntries} entries left live`,
  );
  console.log(
    `  peak RSS: runner ${figures.runner_peak_rss_mb} MB, workerd ${figures.workerd_peak_rss_mb} MB`,
  );
  console.log(
    `  history page of 500: from Redis p50 ${figures.page_redis_p50_ms} ms p99 ${figures.page_redis_p99_ms} ms (${figures.page_redis_commands} Upstash commands/page); from the archive p50 ${figures.page_archive_p50_ms} ms p99 ${figures.page_archive_p99_ms} ms (${figures.page_archive_commands} commands/page)`,
  );
  console.log(
    `  baseline, whole-object archive: ${figures.baseline_whole_object_page_p50_ms} ms per page (${figures.archive_page_speedup}x the segmented page)`,
  );
  console.log(
    `  logs.txt ${figures.logs_txt_mb} MB at ${figures.logs_txt_mb_per_s} MB/s; missing ${missing}, duplicated ${duplicated}, out of order ${outOfOrder}`,
  );
  console.log(figuresLine(figures));
} finally {
  await stack.stop();
}
