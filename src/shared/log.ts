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

/**
 * A logger whose every message starts with `scope: ` (`JobStream:job_1`, `build-log-stream`),
 * written as one JSON object per event (jsonLogger below).
 */
export function scopedLogger(scope: string, sink: Sink = console): Logger {
  const json = jsonLogger(sink);
  return {
    info: (message) => json.info(`${scope}: ${message}`),
    warn: (message, error) => json.warn(`${scope}: ${message}`, error),
    error: (message, error) => json.error(`${scope}: ${message}`, error),
  };
}

/** One log event as one JSON object (what Workers Logs and container log collectors index). */
export interface LogEvent {
  readonly ts: string;
  readonly level: "info" | "warn" | "error";
  readonly message: string;
  readonly error?: { readonly name: string; readonly message: string; readonly stack?: string };
  readonly detail?: unknown;
}

// Our messages name jobs and counts, never a value; what an error carries is not ours, so a
// credential in it (a URL's user info, an Authorization header echoed back) is cut out first.
// A Bearer token, or a URL's password (`://user:password@`; a port has no `@` after it).
const CREDENTIALS = /(Bearer\s+)[^\s"']+|(:\/\/[^/\s:@]+:)[^\s"'@/]+(?=@)/gi;
const scrub = (text: string): string =>
  text.replace(
    CREDENTIALS,
    (_match, bearer?: string, userInfo?: string) => `${bearer ?? userInfo ?? ""}[REDACTED]`,
  );

function describe(error: unknown): Pick<LogEvent, "error" | "detail"> {
  if (error === undefined) return {};
  if (error instanceof Error)
    return {
      error: {
        name: error.name,
        message: scrub(error.message),
        ...(error.stack === undefined ? {} : { stack: scrub(error.stack) }),
      },
    };
  let detail: unknown = error;
  try {
    detail = JSON.parse(scrub(JSON.stringify(error) ?? "null"));
  } catch {
    detail = scrub(String(error));
  }
  return { detail };
}

/**
 * A logger that writes one JSON object per event, on one line, through `sink` (console by
 * default: in a Worker, Workers Logs parses it into fields; in the runner's container, the
 * collector reads stdout and stderr). The message keeps its `Scope:` prefix.
 */
export function jsonLogger(sink: Sink = console, now: () => Date = () => new Date()): Logger {
  const write =
    (level: LogEvent["level"], out: (line: string) => void) =>
    (message: string, error?: unknown): void => {
      const event: LogEvent = {
        ts: now().toISOString(),
        level,
        message: scrub(message),
        ...describe(error),
      };
      out(JSON.stringify(event));
    };
  return {
    info: write("info", (line) => sink.log(line)),
    warn: write("warn", (line) => sink.warn(line)),
    error: write("error", (line) => sink.error(line)),
  };
}

/** The process's logger (the Worker's isolate, or the runner). */
export const log: Logger = jsonLogger();
