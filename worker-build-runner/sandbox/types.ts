import { posix } from "node:path";

// The build sandbox as the job runner sees it. Adapters: localSandbox() (isolated processes on
// this machine, the default) and e2bSandbox() (an E2B cloud sandbox). Both pass one contract suite,
// test/runner/sandbox-contract.test.ts.

/** A `run()` without `timeoutMs` is killed after this long. */
export const DEFAULT_RUN_TIMEOUT_MS = 10 * 60_000;

/** A session without `timeoutMs` ends itself (as `kill()` does) after this long. */
export const DEFAULT_SESSION_TIMEOUT_MS = 30 * 60_000;

/** The exit code reported for a command killed because it ran past its `timeoutMs`. */
export const TIMEOUT_EXIT_CODE = 124;

/** Output in; a promise back when the consumer cannot take more yet. */
// `unknown`, not `void | Promise<void>`: callbacks written as `(c) => chunks.push(c)` stay valid.
export type OutputCallback = (chunk: string | Uint8Array) => unknown;

export interface RunOptions {
  /** Relative to the session's workdir, or absolute inside it; anything else is `bad_path`. */
  readonly cwd?: string;
  /** Added on top of the session's env. The runner's own environment is never passed on. */
  readonly env?: Readonly<Record<string, string>>;
  /**
   * The command and every process it started are killed after this long and the result says
   * `timedOut`. Default for `run()`: `DEFAULT_RUN_TIMEOUT_MS`; for `start()`: none, the process
   * lives until it is killed or the session ends.
   */
  readonly timeoutMs?: number;
  /**
   * Called with each piece of output as it arrives; a chunk may end inside a line or a
   * character. It may return a promise (backpressure: the log cannot take more yet): an
   * adapter that can reads no more of that stream until it settles, so the command blocks on
   * its full pipe instead of its output being dropped. A rejection counts as a throw.
   */
  readonly onStdout: OutputCallback;
  readonly onStderr: OutputCallback;
  /**
   * Told what happened to the command that its own output cannot say (the connection to the
   * sandbox dropped and was resumed, so output may be missing); the runner logs it as a system
   * line. Adapters that cannot lose their connection never call it.
   */
  readonly onNotice?: (message: string) => void;
}

/**
 * How a command ended. A non-zero exit is a result, not an error. A command killed by a signal
 * reports 128 + the signal's number; one that timed out reports `TIMEOUT_EXIT_CODE`.
 */
export interface CommandResult {
  readonly exitCode: number;
  readonly timedOut: boolean;
  /** Set when the sandbox stopped the command, or it failed, because the build went over a limit. */
  readonly limit?: LimitExceeded;
}

export interface LimitExceeded {
  readonly name: "memory" | "processes" | "cpu" | "disk";
  /** For the build's log, e.g. "the build went over its memory limit (2048 MiB)". */
  readonly message: string;
}

export interface BackgroundProcess {
  /** Ends the process and everything it started; resolves once they are gone. */
  kill(): Promise<void>;
  /** Resolves when the process ends, however it ends. */
  wait(): Promise<CommandResult>;
}

export interface SandboxSession {
  readonly id: string;
  /** Absolute path inside the sandbox where builds run. */
  readonly workdir: string;
  /** Runs a `sh -c` command line to completion. */
  run(command: string, options: RunOptions): Promise<CommandResult>;
  /** Starts a `sh -c` command line in the background (a dev server) and returns once it is started. */
  start(command: string, options: RunOptions): Promise<BackgroundProcess>;
  /** Relative to the workdir (or absolute inside it); creates parent directories. */
  writeFile(path: string, content: string | Uint8Array): Promise<void>;
  /** Ends every process and frees the sandbox. Idempotent; later calls to the session fail with `sandbox_closed`. */
  kill(): Promise<void>;
}

export interface Sandbox {
  readonly name: string;
  create(options?: {
    /** Environment for every command of the session. */
    readonly env?: Readonly<Record<string, string>>;
    /** Lifetime of the session; default `DEFAULT_SESSION_TIMEOUT_MS`. */
    readonly timeoutMs?: number;
  }): Promise<SandboxSession>;
  /** Kills every session this sandbox has open (the runner is shutting down). */
  shutdown?(): Promise<void>;
}

export type SandboxErrorCode =
  /** The adapter's options (or the environment they fall back to) are unusable. */
  | "bad_config"
  | "sandbox_create_failed"
  /** The session was killed (or outlived its timeout). */
  | "sandbox_closed"
  /** Options of one call are unusable: a bad env name or value, a timeoutMs that is not a positive integer. */
  | "bad_options"
  /** A path or cwd escapes the workdir. */
  | "bad_path"
  /** The command could not be started (e.g. its cwd does not exist). */
  | "command_start_failed"
  /** The sandbox stopped answering while a command ran. */
  | "command_failed"
  /** onStdout or onStderr threw; the command was killed. */
  | "output_callback_failed"
  | "write_failed"
  | "sandbox_kill_failed";

export class SandboxError extends Error {
  override readonly name = "SandboxError";
  readonly code: SandboxErrorCode;

  constructor(code: SandboxErrorCode, message: string, options?: { readonly cause?: unknown }) {
    super(message, options);
    this.code = code;
  }
}

// Checks both adapters share.

/** Checks an environment before it is handed to a process, whose own error would be obscure. */
export function checkEnv(env: Readonly<Record<string, string>> | undefined, what: string): void {
  for (const [name, value] of Object.entries(env ?? {})) {
    if (name === "" || name.includes("=") || name.includes("\0")) {
      throw new SandboxError(
        "bad_options",
        `${what}: ${JSON.stringify(name)} is not a valid environment variable name`,
      );
    }
    if (typeof value !== "string" || value.includes("\0")) {
      throw new SandboxError(
        "bad_options",
        `${what}: the value of ${name} must be a string without NUL characters`,
      );
    }
  }
}

export function checkTimeout(timeoutMs: number | undefined, what: string): void {
  if (timeoutMs !== undefined && !(Number.isSafeInteger(timeoutMs) && timeoutMs > 0)) {
    throw new SandboxError(
      "bad_options",
      `${what}: timeoutMs must be a positive integer, got ${String(timeoutMs)}`,
    );
  }
}

/**
 * Checks the options of a `Sandbox.create()`; returns what every command of the session gets
 * (CI=true under the options' env) and how long the session lives.
 */
export function sessionSettings(options: Parameters<Sandbox["create"]>[0] & object): {
  readonly env: Readonly<Record<string, string>>;
  readonly timeoutMs: number;
} {
  checkEnv(options.env, "create");
  checkTimeout(options.timeoutMs, "create");
  return {
    env: { CI: "true", ...options.env },
    timeoutMs: options.timeoutMs ?? DEFAULT_SESSION_TIMEOUT_MS,
  };
}

/** One command as an adapter started it: `done` settles when it has ended; `stop()` ends it. */
export interface StartedCommand {
  readonly done: Promise<CommandResult>;
  stop(): Promise<void>;
}

/** What an adapter's session does itself; sessionMethods() checks the calls before them. */
export interface SessionAdapter {
  readonly workdir: string;
  /** Throws `sandbox_closed` once the session is closed; `what` names the call. */
  assertOpen(what: string): void;
  /** Starts `command` in `cwd` (absolute, inside the workdir), killed after `timeoutMs` if set. */
  launch(
    command: string,
    options: RunOptions,
    cwd: string,
    timeoutMs: number | undefined,
  ): Promise<StartedCommand>;
  /** Writes `content` to `target` (absolute, inside the workdir; `path` as the caller gave it). */
  write(target: string, path: string, content: string | Uint8Array): Promise<void>;
}

/**
 * A session's `workdir`, `run()`, `start()` and `writeFile()`: each call checks that the session is open and
 * its options or path, then hands over to the adapter. `run()`'s timeout defaults to
 * `DEFAULT_RUN_TIMEOUT_MS`, `start()`'s to none.
 */
export function sessionMethods(
  adapter: SessionAdapter,
): Pick<SandboxSession, "workdir" | "run" | "start" | "writeFile"> {
  const { workdir } = adapter;
  const launch = (
    command: string,
    options: RunOptions,
    timeoutMs: number | undefined,
  ): Promise<StartedCommand> => {
    adapter.assertOpen("run");
    checkEnv(options.env, "run");
    checkTimeout(options.timeoutMs, "run");
    const cwd = resolveInWorkdir(workdir, options.cwd ?? ".", "run cwd", true);
    return adapter.launch(command, options, cwd, timeoutMs);
  };
  return {
    workdir,
    async run(command, options) {
      const proc = await launch(command, options, options.timeoutMs ?? DEFAULT_RUN_TIMEOUT_MS);
      return proc.done;
    },
    async start(command, options): Promise<BackgroundProcess> {
      const proc = await launch(command, options, options.timeoutMs);
      return { kill: () => proc.stop(), wait: () => proc.done };
    },
    async writeFile(path, content) {
      adapter.assertOpen("writeFile");
      const target = resolveInWorkdir(workdir, path, "writeFile", false);
      await adapter.write(target, path, content);
    },
  };
}

/**
 * The result of a command the adapter itself ended, which outweighs its exit code: throws
 * `output_callback_failed` if an output callback threw (or rejected), else gives the timeout's
 * result if it ran past its timeout; undefined when it ended by itself.
 */
export function endedByAdapter(
  command: string,
  callbackFailure: { readonly cause: unknown } | undefined,
  timedOut: boolean,
): CommandResult | undefined {
  if (callbackFailure !== undefined) {
    throw new SandboxError(
      "output_callback_failed",
      `run: an output callback threw; ${JSON.stringify(command)} was killed`,
      { cause: callbackFailure.cause },
    );
  }
  return timedOut ? { exitCode: TIMEOUT_EXIT_CODE, timedOut: true } : undefined;
}

/**
 * Resolves `path` against `workdir` (POSIX paths, as inside every sandbox) and returns it if it
 * lies inside the workdir (or is the workdir itself, when `allowWorkdir`); throws `bad_path`.
 */
export function resolveInWorkdir(
  workdir: string,
  path: string,
  what: string,
  allowWorkdir: boolean,
): string {
  if (path.includes("\0"))
    throw new SandboxError("bad_path", `${what}: the path contains a NUL character`);
  const resolved = posix.resolve(workdir, path);
  const inside = resolved.startsWith(`${workdir}/`) || (allowWorkdir && resolved === workdir);
  if (!inside)
    throw new SandboxError(
      "bad_path",
      `${what}: ${JSON.stringify(path)} is not inside the workdir ${workdir}`,
    );
  return resolved;
}
