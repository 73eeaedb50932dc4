import { randomUUID } from "node:crypto";
import type { Redis } from "@upstash/redis";
import { exponentialBackoff } from "../src/shared/backoff.ts";
import type { JobRecord, TerminalStatus } from "../src/shared/job.ts";
import {
  CLAIM_JOB_LUA,
  claimKeys,
  END_JOB_LUA,
  type EndOutcome,
  endArgs,
  endKeys,
  parseClaimReply,
  parseEndReply,
  parseRefreshReply,
  REFRESH_LEASE_LUA,
  refreshKeys,
  UPDATE_RUNNING_RECORD_LUA,
  updateRunningRecordKeys,
} from "../src/shared/job-scripts.ts";
import { type JobStep, type RunRequest, secretValuesOf } from "../src/shared/job-spec.ts";
import { createSecretValues } from "../src/shared/sanitize/secret-values.ts";
import type { LiveCopyLimits } from "./config.ts";
import type { JobCancels } from "./job-cancels.ts";
import { createLivePusher, type LivePushTransport } from "./live-push.ts";
import { createLogStreamer, type LogStreamer } from "./log-streamer.ts";
import { countRedactions, runnerMetrics, writerMetrics } from "./metrics.ts";
import { createRedisLogWriter, type Logger } from "./redis-writer.ts";
import type { Sandbox, SandboxSession } from "./sandbox/types.ts";
import { createStepLedger, formatStepDuration, type StepLedger } from "./step-ledger.ts";

/** What `POST /internal/jobs/:id/archive` answers. */
export interface ArchiveProgress {
  /** The last entry archived; null before the first segment. */
  readonly through: string | null;
  readonly complete: boolean;
  readonly more: boolean;
  readonly busy: boolean;
}

/** Tells the Worker about a job: its new lines (pushed to its viewers), and its end (archive, close viewers). */
export interface WorkerNotifier extends LivePushTransport {
  wake(jobId: string): Promise<void>;
  finished(jobId: string): Promise<void>;
  /** Has the Worker archive the job's complete segments so far (it reads them from Redis). */
  archive(jobId: string): Promise<ArchiveProgress>;
}

export interface RunJobDeps {
  readonly redis: Redis;
  readonly sandbox: Sandbox;
  readonly runnerId: string;
  readonly logger?: Logger;
  readonly notifier?: WorkerNotifier;
  /** The lease lives this long unless refreshed (every third of it). */
  readonly leaseMs?: number;
  readonly now?: () => number;
  /** How long the end of a job waits for Redis to take its last lines. */
  readonly endDeadlineMs?: number;
  /**
   * Stops the job when it aborts (the runner shutting down): its sandbox is killed at once, the
   * log says why (the abort's reason, an Error's message or a string) and the job fails.
   */
  readonly signal?: AbortSignal;
  /** Where the service's cancel route finds this job while it runs. */
  readonly cancels?: JobCancels;
  /** What of the log Redis keeps live (default: the first 1,000 lines, the newest 50,000, 64 MiB). */
  readonly liveCopy?: LiveCopyLimits;
}

export type JobOutcome =
  | { readonly kind: "finished"; readonly status: TerminalStatus; readonly exitCode: number | null }
  | { readonly kind: "skipped"; readonly reason: string };

const STREAM_TTL_SECONDS = 86_400;
// About 10 s of retries: then the run request is answered 503 and the queue delivers it again.
const CLAIM_ATTEMPTS = 5;
const DEFAULT_STEP_TIMEOUT_MS = 15 * 60_000;
// Beyond its steps' own limits, a job's sandbox lives this long: creating it, writing the files,
// ending the steps' process groups.
const SANDBOX_PREPARATION_MS = 5 * 60_000;
// E2B's longest sandbox lifetime (Pro); a sandbox asked to live longer is refused.
const MAX_SANDBOX_LIFETIME_MS = 24 * 60 * 60_000;
// How long the end of a job waits for its sandbox to be killed before it reports it could not be.
const KILL_DEADLINE_MS = 30_000;
const END_DEADLINE_MS = 10 * 60_000;
const DEFAULT_STARTUP_MS = 5_000;
// The Worker archives a segment per 10,000 lines: asked about that often, it writes each as it
// completes, and the live copy can let the middle go.
const ARCHIVE_EVERY_LINES = 10_000;
// After the end, archive calls until the archive is complete (each writes up to 8 segments).
const FINAL_ARCHIVE_CALLS = 200;

/**
 * Asks the Worker to archive, one call at a time: while the log grows (every
 * ARCHIVE_EVERY_LINES), and after its end until the archive is complete. A failure is left to
 * the next call or the sweep; the archive writes nothing twice.
 */
function archiveCaller(jobId: string, notifier: WorkerNotifier | undefined, logger: Logger) {
  let since = 0;
  let inflight: Promise<unknown> | null = null;
  // A call asked for while one was under way: made as soon as that one ends.
  let wanted = false;
  let finishing = false;
  const call = () => {
    if (notifier === undefined || finishing) return;
    if (inflight !== null) {
      wanted = true;
      return;
    }
    wanted = false;
    inflight = notifier
      .archive(jobId)
      .then(
        // More complete segments than one call writes: go on at once, so the archive keeps up
        // with a fast build instead of waiting for the next 10,000 lines (the live copy may let
        // the middle go only once it is archived).
        (progress) => {
          if (progress.more && !progress.busy) wanted = true;
        },
        (error: unknown) =>
          logger.warn(
            `build-log-stream: archiving job ${jobId} failed (the next call or the sweep retries): ${String(error)}`,
          ),
      )
      .finally(() => {
        inflight = null;
        if (wanted) call();
      });
  };
  return {
    /**
     * With a Worker to call: one call that starts now, after any under way (which began
     * before the last lines), for the writer holding lines at the live copy's byte cap.
     */
    live:
      notifier === undefined
        ? undefined
        : {
            async archive() {
              while (inflight !== null) await inflight;
              since = 0;
              const answer = notifier.archive(jobId);
              inflight = answer.then(
                () => undefined,
                () => undefined,
              );
              try {
                const progress = await answer;
                return { through: progress.through, more: progress.more, busy: progress.busy };
              } catch (error) {
                logger.warn(
                  `build-log-stream: archiving job ${jobId} failed (the build waits at the live copy's byte cap and tries again): ${String(error)}`,
                );
                return null;
              } finally {
                inflight = null;
                if (wanted) call();
              }
            },
          },
    written(lines: number) {
      since += lines;
      if (since < ARCHIVE_EVERY_LINES) return;
      since = 0;
      call();
    },
    async finish(): Promise<void> {
      if (notifier === undefined) return;
      finishing = true;
      await inflight;
      for (let i = 0; i < FINAL_ARCHIVE_CALLS; i++) {
        const progress = await notifier.archive(jobId);
        if (progress.complete) return;
        if (!progress.more || progress.busy) await new Promise((r) => setTimeout(r, 250));
      }
    },
  };
}

// 200 ms, doubling, at most 5 s.
const callBackoff = exponentialBackoff({ initial: 200, max: 5_000 });

async function withRetries<T>(
  what: string,
  logger: Logger,
  attempt: () => Promise<T>,
  attempts = 8,
): Promise<T> {
  for (let i = 1; ; i++) {
    try {
      return await attempt();
    } catch (error) {
      if (i >= attempts) throw error;
      const delay = callBackoff(i);
      logger.warn(
        `build-log-stream: ${what} failed (attempt ${i}), retrying in ${delay} ms: ${error instanceof Error ? error.message.slice(0, 200) : String(error)}`,
      );
      await new Promise((resolve) => setTimeout(resolve, delay));
    }
  }
}

/** A job this runner holds the lease of, ready to run; or why it will not run here. */
export type ClaimedJob =
  | { readonly kind: "claimed"; run(): Promise<JobOutcome> }
  | { readonly kind: "skipped"; readonly reason: string };

/**
 * Claims a job: takes its lease and marks it running in one step (one Redis script). A retry
 * whose first answer was lost finds the lease holding this claim's token and goes on. Rejects
 * when Redis could not be reached: the caller must not acknowledge the run request then.
 */
export async function claimJob(request: RunRequest, deps: RunJobDeps): Promise<ClaimedJob> {
  const { redis } = deps;
  const logger = deps.logger ?? console;
  const now = deps.now ?? Date.now;
  const leaseMs = deps.leaseMs ?? 30_000;
  const jobId = request.job_id;
  // One token per claim: a redelivery of a job this runner already runs is not taken for its own.
  const token = `${deps.runnerId}:${randomUUID()}`;
  const startedAt = new Date(now()).toISOString();
  const fallback: JobRecord = {
    id: jobId,
    owner: request.owner,
    status: "queued",
    created_at: startedAt,
    started_at: null,
    finished_at: null,
  };
  const claim = redis.createScript(CLAIM_JOB_LUA);
  const outcome = await withRetries(
    "claiming the job",
    logger,
    async () =>
      parseClaimReply(
        await claim.exec(claimKeys(jobId), [
          token,
          String(leaseMs),
          startedAt,
          jobId,
          String(now()),
          JSON.stringify(fallback),
        ]),
      ),
    CLAIM_ATTEMPTS,
  );
  if (outcome.kind === "taken")
    return { kind: "skipped", reason: "another runner holds the job's lease" };
  if (outcome.kind === "status")
    return { kind: "skipped", reason: `the job is already ${outcome.status}` };
  return { kind: "claimed", run: () => runClaimedJob(request, deps, outcome.job, token) };
}

/**
 * Runs one job: claims it with a lease, registers its secrets before any command runs, runs its
 * steps in a fresh sandbox with every line streamed through the sanitizer to Redis, and ends
 * the log with a terminal entry and the job's final status. A queue redelivery of a job that
 * is running or done is skipped.
 */
export async function runJob(request: RunRequest, deps: RunJobDeps): Promise<JobOutcome> {
  const claimed = await claimJob(request, deps);
  return claimed.kind === "claimed" ? claimed.run() : claimed;
}

/**
 * Keeps the lease while the job runs: refreshes it every third of its life, retries a failed
 * refresh within seconds (each request times out), re-takes a lease that lapsed in a Redis
 * stall when nobody else holds it, and restores the job record when Redis lost it.
 */
function keepLease(options: {
  readonly redis: Redis;
  readonly jobId: string;
  readonly token: string;
  readonly leaseMs: number;
  readonly record: () => JobRecord;
  readonly now: () => number;
  readonly logger: Logger;
  readonly onRecordRestored: () => void;
  /** The job ended elsewhere (the sweep failed it) or another runner holds it now. */
  readonly onLost: (state: "taken" | "ended") => void;
  /** Someone cancelled the job (a cancel stored in Redis, in case the direct call was lost). */
  readonly onCancel: (by: string) => void;
}): { stop(): void } {
  const { redis, jobId, logger } = options;
  const refresh = redis.createScript(REFRESH_LEASE_LUA);
  const interval = Math.max(1_000, Math.floor(options.leaseMs / 3));
  let stopped = false;
  let timer: ReturnType<typeof setTimeout> | undefined;
  let failures = 0;
  const tick = async (): Promise<void> => {
    timer = undefined;
    let next = interval;
    try {
      const outcome = parseRefreshReply(
        await refresh.exec(refreshKeys(jobId), [
          options.token,
          String(options.leaseMs),
          JSON.stringify(options.record()),
          jobId,
          String(options.now()),
        ]),
      );
      if (failures > 0 || outcome.lease === "retaken")
        logger.warn(
          `build-log-stream: the lease of job ${jobId} is ${outcome.lease === "retaken" ? "re-taken after it lapsed" : "refreshed again"} (${failures} failed attempts)`,
        );
      failures = 0;
      if (outcome.recordRestored) options.onRecordRestored();
      if (outcome.cancelledBy !== null) options.onCancel(outcome.cancelledBy);
      if (outcome.lease === "taken" || outcome.lease === "ended") {
        stopped = true;
        options.onLost(outcome.lease);
        return;
      }
    } catch (error) {
      failures += 1;
      next = Math.min(interval, 1_000);
      if (failures === 1 || Number.isInteger(Math.log2(failures)))
        logger.warn(
          `build-log-stream: refreshing the lease of job ${jobId} failed (attempt ${failures}); retrying in ${next} ms: ${error instanceof Error ? error.message.slice(0, 200) : String(error)}`,
        );
    }
    if (!stopped) timer = setTimeout(() => void tick(), next);
  };
  timer = setTimeout(() => void tick(), interval);
  return {
    stop() {
      stopped = true;
      clearTimeout(timer);
    },
  };
}

async function runClaimedJob(
  request: RunRequest,
  deps: RunJobDeps,
  running: JobRecord,
  token: string,
): Promise<JobOutcome> {
  const { redis, sandbox } = deps;
  const logger = deps.logger ?? console;
  const now = deps.now ?? Date.now;
  const leaseMs = deps.leaseMs ?? 30_000;
  const jobId = request.job_id;
  const spec = request.spec;

  // With a Worker to push to, viewers get each batch from the push, not from Redis.
  const pusher = deps.notifier
    ? createLivePusher({ jobId, transport: deps.notifier, logger, now })
    : null;
  const archive = archiveCaller(jobId, deps.notifier, logger);
  let session: SandboxSession | null = null;
  let lostTo: "taken" | "ended" | null = null;
  let endOutcome: EndOutcome | null = null;
  let status: TerminalStatus = "failed";
  let exitCode: number | null = null;
  const updateRecord = redis.createScript(UPDATE_RUNNING_RECORD_LUA);
  const withSteps = (record: JobRecord): JobRecord => {
    const summaries = steps.summaries();
    return summaries === undefined ? record : { ...record, steps: summaries };
  };
  const steps: StepLedger = createStepLedger({
    log: () => log,
    now,
    logger,
    save: (summaries) =>
      updateRecord.exec(updateRunningRecordKeys(jobId), [
        token,
        JSON.stringify({ ...running, steps: summaries }),
      ]),
  });
  const finishedRecord = (): JobRecord => ({
    ...withSteps(running),
    status,
    finished_at: new Date(now()).toISOString(),
    exit_code: exitCode,
  });
  const endJob = redis.createScript(END_JOB_LUA);
  const writer = createRedisLogWriter({
    redis,
    jobId,
    logger,
    metrics: writerMetrics,
    ...(deps.liveCopy
      ? {
          headLines: deps.liveCopy.headLines,
          maxLines: deps.liveCopy.tailLines,
          maxLiveBytes: deps.liveCopy.maxBytes,
        }
      : {}),
    onStepLine: (record, line) => steps.numbered(record, line),
    onWritten: (written) => {
      pusher?.written(written);
      archive.written(written.lines);
    },
    ...(pusher ? { flushTiming: pusher.flushTiming } : {}),
    // Nothing leaves the live copy before the archive has it: at the byte cap the build waits.
    ...(archive.live ? { archiver: archive.live } : {}),
    // The terminal entry and the final status in one script: the end is decided once, with
    // the sweep, so the stream and the record never disagree.
    writeEnd: async (entry) => {
      const finished = finishedRecord();
      endOutcome = parseEndReply(
        await endJob.exec(
          endKeys(jobId),
          endArgs({
            entryId: entry.id,
            finished,
            now: now(),
            ttlSeconds: STREAM_TTL_SECONDS,
            expected: null,
            fields: entry.fields,
          }),
        ),
      );
    },
  });
  const secrets = createSecretValues();
  const log = createLogStreamer({
    writer,
    secrets,
    phase: spec.steps[0]?.phase ?? "build",
    countRedactions,
  });
  const lease = keepLease({
    redis,
    jobId,
    token,
    leaseMs,
    record: () => withSteps(running),
    now,
    logger,
    onRecordRestored: () => {
      logger.warn(`build-log-stream: Redis lost the record of job ${jobId}; restored it`);
      log.writeEvent("Redis lost this job's record while it ran; it has been restored.");
    },
    onLost: (state) => {
      lostTo = state;
      logger.warn(
        `build-log-stream: job ${jobId} ${state === "ended" ? "was ended elsewhere (the sweep)" : "is held by another runner"}; stopping it here`,
      );
      writer.abandon();
      session?.kill().catch(() => undefined);
    },
    onCancel: (by) => cancel(by),
  });
  // Secrets first: nothing has run yet, so nothing can have printed them.
  for (const { name, value } of secretValuesOf(spec)) {
    const result = secrets.add(value);
    if (!result.added)
      log.writeEvent(`Warning: the value of ${name} is not masked in this log: ${result.reason}.`);
  }

  const sandboxTimeoutMs = jobDeadlineMs(spec);
  // A stop kills the sandbox at once, which ends whatever command is running.
  const stop = (): void => void session?.kill().catch(() => undefined);
  // A cancel stops the build as a shutdown does; the log and the status say it was cancelled.
  let cancelledBy: string | null = null;
  function cancel(by: string): void {
    if (cancelledBy !== null) return;
    cancelledBy = by;
    logger.warn(`build-log-stream: job ${jobId} cancelled by ${by}; stopping its sandbox`);
    stop();
  }
  const unregisterCancel = deps.cancels?.register(jobId, cancel);
  // A function, not a narrowed property: the signal may abort during any await.
  const stopped = (): boolean => deps.signal?.aborted === true || cancelledBy !== null;
  const stopReason = (): string =>
    cancelledBy !== null
      ? `The build was cancelled by ${cancelledBy}.`
      : `The build was stopped: ${deps.signal ? reasonOf(deps.signal) : "the runner stopped it"}`;
  deps.signal?.addEventListener("abort", stop, { once: true });
  try {
    log.writeEvent("--- Preparing the sandbox ---");
    if (!stopped()) {
      const endStart = runnerMetrics.sandboxStartSeconds.startTimer();
      session = await sandbox.create({
        env: { ...spec.env, ...spec.secrets },
        timeoutMs: sandboxTimeoutMs,
      });
      endStart();
      if (stopped()) stop();
      if (lostTo !== null) throw new Error("the job was taken from this runner");
      for (const [path, content] of Object.entries(spec.files))
        await session.writeFile(path, content);
      ({ status, exitCode } = await runSteps(session, spec.steps, log, steps, stopped));
    }
    if (stopped()) {
      status = cancelledBy !== null ? "cancelled" : "failed";
      // The step it stopped ends with the line that says why.
      if (steps.open) steps.end(status, exitCode, stopReason());
      else log.writeEvent(stopReason());
    }
  } catch (error) {
    const reason = stopped()
      ? stopReason()
      : `The build could not run: ${error instanceof Error ? error.message : String(error)}`;
    status = cancelledBy !== null ? "cancelled" : "failed";
    if (steps.open) steps.end(status, null, reason);
    else log.writeEvent(reason);
  } finally {
    deps.signal?.removeEventListener("abort", stop);
    unregisterCancel?.();
    // Killed before the log ends, so nothing of the build runs once the job is reported over,
    // and a sandbox that cannot be killed is said in the log.
    if (session !== null) {
      const killed = await killWithin(session, KILL_DEADLINE_MS);
      if (killed !== true)
        log.writeEvent(
          `The sandbox ${session.id} could not be stopped (${killed}); it ends by itself within ${Math.ceil(sandboxTimeoutMs / 60_000)} minutes of the job's start.`,
        );
    }
    // The lease is held until the end is written: the sweep must not take a job whose runner is
    // still writing. Past the deadline (Redis down for that long) the lease is let go and the
    // sweep fails the job; the lines still waiting are reported in the runner's log.
    let deadline: ReturnType<typeof setTimeout> | undefined;
    const written = await Promise.race([
      log
        .flush()
        .then(() => writer.end(status))
        .then(() => true),
      new Promise<false>(
        (resolve) =>
          (deadline = setTimeout(() => resolve(false), deps.endDeadlineMs ?? END_DEADLINE_MS)),
      ),
    ]);
    clearTimeout(deadline);
    lease.stop();
    const ended = endOutcome as EndOutcome | null;
    if (!written)
      logger.warn(
        `build-log-stream: job ${jobId} ended ${status} but Redis did not take its last lines within the deadline`,
      );
    else if (ended !== null && ended.kind !== "ended")
      logger.warn(
        `build-log-stream: job ${jobId} ended ${status} here, but it had already ended ${ended.kind === "already" ? ended.status : "elsewhere"}; that end stands`,
      );
    // The end's push goes before the end notice: viewers get `done` from it.
    await pusher?.close();
    await deps.notifier?.finished(jobId).catch((error: unknown) => {
      logger.warn(
        `build-log-stream: telling the Worker that job ${jobId} ended failed (the sweep will archive it): ${String(error)}`,
      );
    });
    await archive.finish().catch((error: unknown) => {
      logger.warn(
        `build-log-stream: the archive of job ${jobId} is not complete yet (the sweep finishes it): ${String(error)}`,
      );
    });
  }
  const ended = endOutcome as EndOutcome | null;
  if (ended?.kind === "already") status = ended.status;
  runnerMetrics.jobsFinished.inc({ status });
  return { kind: "finished", status, exitCode };
}

/**
 * How long a job's sandbox may live: every step's own limit (a foreground step's timeout, a
 * background step's wait to be ready) plus the preparation, capped at E2B's longest lifetime.
 */
export function jobDeadlineMs(spec: { readonly steps: readonly JobStep[] }): number {
  let total = SANDBOX_PREPARATION_MS;
  for (const step of spec.steps)
    total += step.background
      ? (step.startup_ms ?? (step.ready_text === undefined ? DEFAULT_STARTUP_MS : 60_000))
      : (step.timeout_ms ?? DEFAULT_STEP_TIMEOUT_MS);
  return Math.min(total, MAX_SANDBOX_LIFETIME_MS);
}

/** true once the session is killed; otherwise why not (its error, or the deadline passing). */
async function killWithin(session: SandboxSession, ms: number): Promise<true | string> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([
      session.kill().then(
        () => true as const,
        (error: unknown) => (error instanceof Error ? error.message : String(error)),
      ),
      new Promise<string>((resolve) => {
        timer = setTimeout(() => resolve(`no answer within ${Math.round(ms / 1000)} s`), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

function reasonOf(signal: AbortSignal): string {
  const reason: unknown = signal.reason;
  if (reason instanceof Error) return reason.message;
  return typeof reason === "string" ? reason : "the runner stopped it";
}

async function runSteps(
  session: SandboxSession,
  steps: readonly JobStep[],
  log: LogStreamer,
  ledger: StepLedger,
  stopped: () => boolean,
): Promise<{ status: TerminalStatus; exitCode: number | null }> {
  let exitCode: number | null = null;
  for (const [index, step] of steps.entries()) {
    log.setPhase(step.phase);
    ledger.start(index, step);
    if (step.background) {
      const started = await startBackground(session, step, log);
      if (stopped()) return { status: "failed", exitCode: started.ok ? null : started.exitCode };
      if (!started.ok) {
        ledger.end("failed", started.exitCode, `${step.name} ${started.reason}`);
        return { status: "failed", exitCode: started.exitCode };
      }
      ledger.end("succeeded", null, `${step.name} is running`);
      continue;
    }
    const result = await session.run(step.command, {
      timeoutMs: step.timeout_ms ?? DEFAULT_STEP_TIMEOUT_MS,
      onStdout: (chunk) => log.onStdout(chunk),
      onStderr: (chunk) => log.onStderr(chunk),
      onNotice: (message) => log.writeEvent(message),
    });
    await log.flush();
    exitCode = result.exitCode;
    // Killed because the job was stopped: the caller says so instead.
    if (stopped()) return { status: "failed", exitCode };
    if (result.timedOut) {
      ledger.end(
        "failed",
        exitCode,
        `${step.name} timed out after ${Math.round((step.timeout_ms ?? DEFAULT_STEP_TIMEOUT_MS) / 1000)} s`,
      );
      return { status: "failed", exitCode };
    }
    if (result.exitCode !== 0) {
      if (result.limit !== undefined)
        log.writeEvent(`${step.name} stopped: ${result.limit.message}`);
      ledger.end("failed", exitCode, `${step.name} failed with exit code ${result.exitCode}`);
      return { status: "failed", exitCode };
    }
    ledger.end(
      "succeeded",
      exitCode,
      (ms) => `${step.name} succeeded in ${formatStepDuration(ms)}`,
    );
  }
  log.writeEvent("--- Build finished ---");
  return { status: "ready", exitCode };
}

type StartOutcome = { ok: true } | { ok: false; exitCode: number | null; reason: string };

/**
 * Starts a dev server and waits until it prints its ready text (when it has one, at most
 * `startup_ms`, default 60 s), or for `startup_ms` (default 5 s) when it has none; it fails if
 * it exits first or never says it is ready.
 */
async function startBackground(
  session: SandboxSession,
  step: JobStep,
  log: LogStreamer,
): Promise<StartOutcome> {
  const decoder = new TextDecoder();
  let signalReady: () => void = () => undefined;
  const ready = new Promise<void>((resolve) => (signalReady = resolve));
  let seen = "";
  const watch = (chunk: string | Uint8Array): void => {
    if (step.ready_text === undefined) return;
    // Keep a tail so the ready text is found even when a chunk boundary splits it.
    seen = (
      seen + (typeof chunk === "string" ? chunk : decoder.decode(chunk, { stream: true }))
    ).slice(-4096);
    if (seen.includes(step.ready_text)) signalReady();
  };
  const process = await session.start(step.command, {
    onStdout: (chunk) => {
      watch(chunk);
      return log.onStdout(chunk);
    },
    onStderr: (chunk) => {
      watch(chunk);
      return log.onStderr(chunk);
    },
    onNotice: (message) => log.writeEvent(message),
  });
  const waitMs = step.startup_ms ?? (step.ready_text === undefined ? DEFAULT_STARTUP_MS : 60_000);
  let timer: ReturnType<typeof setTimeout> | undefined;
  const outcome = await Promise.race<StartOutcome>([
    ready.then(() => ({ ok: true })),
    new Promise<StartOutcome>((resolve) => {
      timer = setTimeout(() => {
        resolve(
          step.ready_text === undefined
            ? { ok: true }
            : {
                ok: false,
                exitCode: null,
                reason: `did not print "${step.ready_text}" within ${waitMs >= 1000 ? `${Math.round(waitMs / 1000)} s` : `${waitMs} ms`}`,
              },
        );
      }, waitMs);
    }),
    process.wait().then((result) => ({
      ok: false,
      exitCode: result.exitCode,
      reason: `exited with code ${result.exitCode} before it was ready`,
    })),
  ]);
  clearTimeout(timer);
  await log.flush();
  return outcome;
}
