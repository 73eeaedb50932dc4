import { Counter, Gauge, Histogram, Registry } from "prom-client";
import { REDACTION_FAMILIES } from "../src/shared/sanitize/redaction-families.ts";
import type { RedactionCounter } from "./log-streamer.ts";
import type { WriterMetrics } from "./redis-writer.ts";

// The runner's Prometheus metrics, served at GET /metrics (worker-build-runner/server.ts) in the
// text format, with prom-client (the Node ecosystem's client). One registry per process: the
// parts that count (the writer, the job loop) reach it through `runnerMetrics`, so no option is
// threaded through every factory. Labels are bounded sets (statuses, redaction families); never a
// job id, a rule, a line or a value from a build, so a scrape cannot carry a secret or grow
// without end.

export const metricsRegistry = new Registry();
metricsRegistry.setDefaultLabels({ service: "build-log-runner" });

const bufferProbes = new Set<() => number>();

export const runnerMetrics = {
  jobsRunning: new Gauge({
    name: "build_log_jobs_running",
    help: "Jobs this runner is running now",
    registers: [metricsRegistry],
  }),
  jobsFinished: new Counter({
    name: "build_log_jobs_finished_total",
    help: "Jobs this runner finished, by final status",
    labelNames: ["status"] as const,
    registers: [metricsRegistry],
  }),
  linesWritten: new Counter({
    name: "build_log_lines_written_total",
    help: "Log lines written to Redis",
    registers: [metricsRegistry],
  }),
  bytesWritten: new Counter({
    name: "build_log_bytes_written_total",
    help: "Bytes of log entries written to Redis (as sent)",
    registers: [metricsRegistry],
  }),
  droppedLines: new Counter({
    name: "build_log_dropped_lines_total",
    help: "Lines dropped before Redis took them (its buffer was full while Redis was out or slow)",
    registers: [metricsRegistry],
  }),
  redactions: new Counter({
    name: "build_log_redactions_total",
    help: "Secrets masked in build output before it left the runner, by rule family",
    labelNames: ["family"] as const,
    registers: [metricsRegistry],
  }),
  redisRetries: new Counter({
    name: "build_log_redis_retries_total",
    help: "Writes to Redis that failed and were tried again",
    registers: [metricsRegistry],
  }),
  bufferedBytes: new Gauge({
    name: "build_log_buffered_bytes",
    help: "Bytes of lines waiting for Redis, over every job's writer",
    registers: [metricsRegistry],
    collect() {
      let total = 0;
      for (const probe of bufferProbes) total += probe();
      this.set(total);
    },
  }),
  sandboxStartSeconds: new Histogram({
    name: "build_log_sandbox_start_seconds",
    help: "Time to create a job's sandbox",
    buckets: [0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60],
    registers: [metricsRegistry],
  }),
};

// Every family from the start at 0, so a dashboard's rate() sees the first redaction of each.
for (const family of REDACTION_FAMILIES) runnerMetrics.redactions.inc({ family }, 0);

/** The log streamer's counts of redactions (worker-build-runner/log-streamer.ts's option). */
export const countRedactions: RedactionCounter = (family, count) =>
  runnerMetrics.redactions.inc({ family }, count);

/** Counts a writer's waiting bytes in `build_log_buffered_bytes` until the returned function is called. */
export function trackBufferedBytes(probe: () => number): () => void {
  bufferProbes.add(probe);
  return () => bufferProbes.delete(probe);
}

/** The writer's counts (worker-build-runner/redis-writer.ts takes them as an option). */
export const writerMetrics: WriterMetrics = {
  written(lines, bytes) {
    runnerMetrics.linesWritten.inc(lines);
    runnerMetrics.bytesWritten.inc(bytes);
  },
  retried: () => runnerMetrics.redisRetries.inc(),
  dropped: (lines) => runnerMetrics.droppedLines.inc(lines),
  trackBuffered: trackBufferedBytes,
};
