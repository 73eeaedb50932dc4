import { type LogRecord, type LogSource, PHASE_PATTERN } from "../src/shared/entry.ts";
import { createLineSanitizer, type LineSanitizer } from "../src/shared/sanitize/line-sanitizer.ts";
import type { RedactionFamily, RedactionTally } from "../src/shared/sanitize/redaction-families.ts";
import { createSecretValues, type SecretValues } from "../src/shared/sanitize/secret-values.ts";
import type { StepMark } from "../src/shared/steps.ts";
import { createLineBuffer, type LineBuffer } from "./line-buffer.ts";
import type { RedisLogWriter } from "./redis-writer.ts";

/**
 * Where redactions are counted (the runner's metrics). An option, as the writer's metrics are:
 * prom-client stays out of what the tests also run elsewhere. Called once per family per batch
 * of lines (a chunk's complete lines, or a system event), with how many secrets it masked.
 */
export type RedactionCounter = (family: RedactionFamily, count: number) => void;

export interface LogStreamerOptions {
  readonly writer: RedisLogWriter;
  readonly countRedactions?: RedactionCounter;
  /** Exact values to mask; register the job's secrets here before its first command runs. */
  readonly secrets?: SecretValues;
  readonly phase?: string;
  readonly maxLineLength?: number;
  readonly now?: () => number;
}

/**
 * The runner's side of a job's log: raw sandbox output in, sanitized structured lines out to
 * the writer. stdout and stderr are buffered and sanitized independently, so a line half
 * written on one is never glued to the other, and a private key block on one stream does not
 * hide the other.
 */
export interface LogStreamer {
  /**
   * Takes a chunk of output. Returns a promise when Redis is slower than the build: the caller
   * (the sandbox adapter) reads no more output until it resolves, so the build is paused
   * instead of its lines dropped.
   */
  onStdout(chunk: string | Uint8Array): Promise<void> | undefined;
  onStderr(chunk: string | Uint8Array): Promise<void> | undefined;
  /** Writes a `system` line, e.g. "--- Installing dependencies ---". */
  writeEvent(text: string): void;
  /**
   * Writes the one-line `system` line `text` carrying `mark` (a step's start or end), both
   * sanitized as every line is. Returns the record as written (its `step.name` sanitized).
   */
  writeStep(mark: StepMark, text: string): LogRecord | null;
  /** Lines from now on belong to this phase (`install`, `build`, `dev_server`, ...). */
  setPhase(phase: string): void;
  readonly phase: string;
  /** Ends unterminated lines and resolves once every line so far is in Redis. */
  flush(): Promise<void>;
}

function checkedPhase(phase: string): string {
  if (!PHASE_PATTERN.test(phase))
    throw new RangeError(`invalid phase ${JSON.stringify(phase)}: expected ${PHASE_PATTERN}`);
  return phase;
}

export function createLogStreamer(options: LogStreamerOptions): LogStreamer {
  const writer = options.writer;
  const secrets = options.secrets ?? createSecretValues();
  const now = options.now ?? Date.now;
  const bufferOptions = {
    ...(options.maxLineLength === undefined ? {} : { maxLineLength: options.maxLineLength }),
    safeCut: (text: string, cut: number) => secrets.safeCut(text, cut),
  };
  let phase = checkedPhase(options.phase ?? "build");
  const countRedactions = options.countRedactions;
  // Filled by the three sanitizers line by line, handed to the counter after each batch.
  const redactions: RedactionTally | undefined =
    countRedactions === undefined ? undefined : new Map();
  const sanitizerOptions = redactions === undefined ? { secrets } : { secrets, redactions };

  const streams: Record<LogSource, { sanitizer: LineSanitizer; buffer: LineBuffer | null }> = {
    stdout: {
      sanitizer: createLineSanitizer(sanitizerOptions),
      buffer: createLineBuffer(bufferOptions),
    },
    stderr: {
      sanitizer: createLineSanitizer(sanitizerOptions),
      buffer: createLineBuffer(bufferOptions),
    },
    system: { sanitizer: createLineSanitizer(sanitizerOptions), buffer: null },
  };
  // Its own sanitizer: a step's name is not a line of the log, and must not change the state
  // (a private key block begun) of the system lines'.
  const names = createLineSanitizer({ secrets });

  const emit = (source: LogSource, lines: readonly string[]): void => {
    if (lines.length === 0) return;
    const ts = new Date(now()).toISOString();
    const { sanitizer } = streams[source];
    for (const line of lines) {
      const styled = sanitizer.sanitizeStyled(line);
      if (styled !== null) writer.append({ ts, source, phase, ...styled });
    }
    if (countRedactions !== undefined && redactions !== undefined && redactions.size > 0) {
      for (const [family, count] of redactions) countRedactions(family, count);
      redactions.clear();
    }
  };

  const push = (
    source: "stdout" | "stderr",
    chunk: string | Uint8Array,
  ): Promise<void> | undefined => {
    const buffer = streams[source].buffer;
    if (buffer) emit(source, buffer.push(chunk));
    return writer.waitForRoom() ?? undefined;
  };

  return {
    onStdout: (chunk) => push("stdout", chunk),
    onStderr: (chunk) => push("stderr", chunk),
    writeEvent(text) {
      emit("system", text.split("\n"));
    },
    writeStep(mark, text) {
      const styled = streams.system.sanitizer.sanitizeStyled(text.replace(/[\r\n]+/g, " "));
      if (styled === null) return null;
      const name = (names.sanitizeStyled(mark.name.replace(/[\r\n]+/g, " "))?.text ?? "").slice(
        0,
        200,
      );
      const record: LogRecord = {
        ts: new Date(now()).toISOString(),
        source: "system",
        phase,
        ...styled,
        step: { ...mark, name },
      };
      writer.append(record);
      return record;
    },
    setPhase(next) {
      phase = checkedPhase(next);
    },
    get phase() {
      return phase;
    },
    async flush() {
      for (const source of ["stdout", "stderr"] as const) {
        const buffer = streams[source].buffer;
        if (buffer) emit(source, buffer.end());
      }
      await writer.drain();
    },
  };
}
