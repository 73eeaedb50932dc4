/**
 * The one logger shape of the Worker, the Durable Object and the runner: a message that says
 * what happened to what, and the error, if any, beside it (never inside the message, so that a
 * log pipeline keeps its stack).
 */
export interface Logger {
  info(message: string): void;
  warn(message: string, error?: unknown): void;
  error(message: string, error?: unknown): void;
}

type Sink = Pick<Console, "log" | "warn" | "error">;

/** A logger whose every message starts with `scope: ` (`JobStream:job_1`, `build-log-stream`). */
export function scopedLogger(scope: string, sink: Sink = console): Logger {
  const withError = (write: (...parts: unknown[]) => void) => (message: string, error?: unknown) =>
    error === undefined ? write(`${scope}: ${message}`) : write(`${scope}: ${message}`, error);
  return {
    info: (message) => sink.log(`${scope}: ${message}`),
    warn: withError((...parts) => sink.warn(...parts)),
    error: withError((...parts) => sink.error(...parts)),
  };
}
