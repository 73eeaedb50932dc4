/**
 * Build steps as data (entry format v3). The runner marks where each step of the job spec
 * starts and ends with a field on the system line it writes there anyway ("--- Building ---",
 * "Building failed with exit code 2"), so the marks travel in the same entries as the lines:
 * no extra Redis command, and history, SSE, the archive and the search carry them unchanged.
 *
 *   i       the step's index in the spec (0-based)
 *   name    its name, as sanitized as the line's text
 *   event   "start" or "end"
 *   status  on "end": succeeded, failed or cancelled (a job stopped while the step ran)
 *   exit    on "end": the command's exit code, null when it had none (killed, timed out,
 *           a background step that is up)
 *   ms      on "end": how long the step took
 *
 * A step started and not ended is running, or was cut short with the job (a lost runner).
 * Lines from a step's start mark to its end mark, both included, are the step's lines.
 */
export const STEP_STATUSES = ["succeeded", "failed", "cancelled"] as const;
export type StepEndStatus = (typeof STEP_STATUSES)[number];
/** What a viewer shows for a step: running until its end mark says otherwise. */
export type StepStatus = "running" | StepEndStatus;

export type StepMark =
  | { readonly i: number; readonly name: string; readonly event: "start" }
  | {
      readonly i: number;
      readonly name: string;
      readonly event: "end";
      readonly status: StepEndStatus;
      readonly exit: number | null;
      readonly ms: number;
    };

/** The spec allows 50 steps; the bound keeps a reader from trusting a huge index. */
export const MAX_STEPS = 50;
const MAX_STEP_NAME = 200;
const END_STATUSES: ReadonlySet<string> = new Set(STEP_STATUSES);

/** Checks a line's `step` field by hand, as `isLogRecord` checks the rest of the line. */
export function isStepMark(value: unknown): value is StepMark {
  if (typeof value !== "object" || value === null) return false;
  const mark = value as Record<string, unknown>;
  if (
    !Number.isInteger(mark.i) ||
    (mark.i as number) < 0 ||
    (mark.i as number) >= MAX_STEPS ||
    typeof mark.name !== "string" ||
    mark.name.length > MAX_STEP_NAME
  )
    return false;
  if (mark.event === "start") return true;
  return (
    mark.event === "end" &&
    typeof mark.status === "string" &&
    END_STATUSES.has(mark.status) &&
    (mark.exit === null || Number.isInteger(mark.exit)) &&
    Number.isInteger(mark.ms) &&
    (mark.ms as number) >= 0
  );
}

/** The mark's fields, nothing else: what readers pass on. */
export function stepMarkOf(mark: StepMark): StepMark {
  if (mark.event === "start") return { i: mark.i, name: mark.name, event: "start" };
  const { i, name, status, exit, ms } = mark;
  return { i, name, event: "end", status, exit, ms };
}

/** One step as the job record lists it (`GET /api/jobs/:id`): kept by the runner as it runs. */
export interface StepSummary {
  readonly index: number;
  readonly name: string;
  readonly phase: string;
  readonly status: StepStatus;
  readonly started_at: string;
  readonly finished_at: string | null;
  readonly duration_ms: number | null;
  readonly exit_code: number | null;
  /** The line number (0-based) of its start mark, once written; null until then. */
  readonly first_line: number | null;
  /** How many lines it has, marks included, once it ended and both marks are numbered. */
  readonly lines: number | null;
}
