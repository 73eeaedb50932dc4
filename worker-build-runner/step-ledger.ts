import type { LogRecord } from "../src/shared/entry.ts";
import type { StepEndStatus, StepSummary } from "../src/shared/steps.ts";
import type { LogStreamer } from "./log-streamer.ts";
import type { Logger } from "./redis-writer.ts";

/**
 * The steps of one job as they run: writes each step's start and end marks into the log (on
 * the system lines written there anyway) and keeps the summaries the job record lists. The
 * record is saved when a mark gets its line number, so it says where each step starts; one
 * save at a time, the latest state winning, a failed save left to the next or to the end
 * (whose record carries the steps too).
 */
export interface StepLedger {
  start(index: number, step: { readonly name: string; readonly phase: string }): void;
  /** Ends the running step with the system line `text` (given its duration) carrying its end mark. */
  end(
    status: StepEndStatus,
    exitCode: number | null,
    text: string | ((durationMs: number) => string),
  ): void;
  /** Whether a step started and has not ended. */
  readonly open: boolean;
  /** The writer's `onStepLine`. */
  numbered(record: LogRecord, line: number): void;
  summaries(): StepSummary[] | undefined;
}

export interface StepLedgerOptions {
  readonly log: () => LogStreamer;
  readonly now: () => number;
  /** Writes the running record with these steps (one Redis command). */
  readonly save: (steps: StepSummary[]) => Promise<unknown>;
  readonly logger: Logger;
}

export function createStepLedger(options: StepLedgerOptions): StepLedger {
  const { now } = options;
  const steps: StepSummary[] = [];
  // Each step's start instant, for its duration.
  const startedAt: number[] = [];
  let current: number | null = null;
  let saving: Promise<unknown> | null = null;
  let dirty = false;

  const save = (): void => {
    if (saving !== null) {
      dirty = true;
      return;
    }
    dirty = false;
    saving = options
      .save(steps.slice())
      .catch((error: unknown) =>
        options.logger.warn(
          `build-log-stream: saving the job's steps failed (the next step or the end saves them): ${String(error)}`,
        ),
      )
      .finally(() => {
        saving = null;
        if (dirty) save();
      });
  };

  const update = (index: number, change: Partial<StepSummary>): void => {
    const step = steps[index];
    if (step !== undefined) steps[index] = { ...step, ...change };
  };

  return {
    start(index, step) {
      const at = now();
      const record = options
        .log()
        .writeStep({ i: index, name: step.name, event: "start" }, `--- ${step.name} ---`);
      startedAt[index] = at;
      current = index;
      steps[index] = {
        index,
        name: record?.step?.name ?? "",
        phase: step.phase,
        status: "running",
        started_at: new Date(at).toISOString(),
        finished_at: null,
        duration_ms: null,
        exit_code: null,
        first_line: null,
        lines: null,
      };
    },
    end(status, exitCode, text) {
      if (current === null) return;
      const index = current;
      current = null;
      const at = now();
      const ms = Math.max(0, at - (startedAt[index] ?? at));
      const name = steps[index]?.name ?? "";
      options
        .log()
        .writeStep(
          { i: index, name, event: "end", status, exit: exitCode, ms },
          typeof text === "string" ? text : text(ms),
        );
      update(index, {
        status,
        exit_code: exitCode,
        duration_ms: ms,
        finished_at: new Date(at).toISOString(),
      });
    },
    get open() {
      return current !== null;
    },
    numbered(record, line) {
      const mark = record.step;
      if (mark === undefined) return;
      const step = steps[mark.i];
      if (step === undefined) return;
      if (mark.event === "start") update(mark.i, { first_line: line });
      else if (step.first_line !== null) update(mark.i, { lines: line - step.first_line + 1 });
      save();
    },
    summaries() {
      return steps.length === 0 ? undefined : steps.filter((step) => step !== undefined);
    },
  };
}

/** "0.4 s", "12 s", "3 min 05 s": a step's duration in its end line. */
export function formatStepDuration(ms: number): string {
  if (ms < 10_000) return `${(ms / 1000).toFixed(1)} s`;
  const seconds = Math.round(ms / 1000);
  if (seconds < 60) return `${seconds} s`;
  return `${Math.floor(seconds / 60)} min ${String(seconds % 60).padStart(2, "0")} s`;
}
