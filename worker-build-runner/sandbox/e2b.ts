import type { CommandHandle } from "e2b";
import {
  CommandExitError,
  SandboxError as E2BError,
  Sandbox as E2BSandbox,
  RateLimitError,
  ServiceBusyError,
  TimeoutError,
} from "e2b";
import type {
  CommandResult,
  RunOptions,
  Sandbox,
  SandboxSession,
  SessionAdapter,
} from "./types.ts";
import {
  endedByAdapter,
  SandboxError,
  sessionMethods,
  sessionSettings,
  TIMEOUT_EXIT_CODE,
} from "./types.ts";

export interface E2BSandboxOptions {
  /** Default: the E2B_API_KEY environment variable. */
  readonly apiKey?: string;
  /** Sandbox template name or id; default E2B's `base`. */
  readonly template?: string;
  /** Default: the E2B_DOMAIN environment variable, else e2b.app (the SDK decides). */
  readonly domain?: string;
  /** The sandbox API's base URL; default E2B_API_URL, else E2B's (the SDK decides). */
  readonly apiUrl?: string;
  /** One base URL for every sandbox's envd; default E2B_SANDBOX_URL, else per sandbox (the SDK decides). */
  readonly sandboxUrl?: string;
  /**
   * How long to wait before each new attempt when the API answers a creation with 429 or a 5xx
   * (the SDK itself retries a 429 that carries Retry-After); default 1 s, then 4 s.
   */
  readonly createRetryDelaysMs?: readonly number[];
}

// Under the user's home: /home/user/app in E2B's templates.
const WORKDIR_IN_HOME = "app";
const KILL_GRACE_SECONDS = 5;
const DEFAULT_CREATE_RETRY_DELAYS_MS = [1_000, 4_000];
// A command whose stream to envd drops is followed again (commands.connect) this many times.
const MAX_RECONNECTS = 5;
const RECONNECT_DELAY_MS = 500;
// The SDK's own deadline for a command (envd kills the shell alone when it passes) is a backstop
// behind our timer, which ends the whole process group.
const SDK_DEADLINE_SLACK_MS = 30_000;
const KILLED_EXIT_CODE = 128 + 9;
// envd reports a command killed by a signal as exit code -1 and Go's name for the signal.
const SIGNAL_NUMBERS: Readonly<Record<string, number>> = {
  hangup: 1,
  interrupt: 2,
  quit: 3,
  killed: 9,
  terminated: 15,
};

/**
 * Builds run in an E2B cloud sandbox, one per session, in `$HOME/app` (/home/user/app in E2B's
 * templates). The runner's environment never reaches it: a command sees envd's minimal
 * environment (PATH, HOME, USER), CI=true, the session's env and its own.
 */
export function e2bSandbox(options: E2BSandboxOptions = {}): Sandbox {
  const apiKey = options.apiKey ?? process.env.E2B_API_KEY ?? "";
  const problems: string[] = [];
  if (apiKey === "") problems.push("E2B_API_KEY is not set (nor the apiKey option)");
  if (options.template === "") problems.push("template is empty");
  if (options.domain === "") problems.push("domain is empty");
  for (const name of ["apiUrl", "sandboxUrl"] as const) {
    const url = options[name];
    if (url !== undefined && !/^https?:\/\/[^\s/]+/.test(url))
      problems.push(`${name} is not an http(s) URL: ${JSON.stringify(url)}`);
  }
  const retryDelays = options.createRetryDelaysMs ?? DEFAULT_CREATE_RETRY_DELAYS_MS;
  if (!retryDelays.every((delay) => Number.isSafeInteger(delay) && delay >= 0))
    problems.push("createRetryDelaysMs must be non-negative integers");
  if (problems.length > 0)
    throw new SandboxError("bad_config", `e2b sandbox: ${problems.join("; ")}`);
  const connection = {
    apiKey,
    ...(options.domain === undefined ? {} : { domain: options.domain }),
    ...(options.apiUrl === undefined ? {} : { apiUrl: options.apiUrl }),
    ...(options.sandboxUrl === undefined ? {} : { sandboxUrl: options.sandboxUrl }),
  };

  return {
    name: "e2b",
    async create(createOptions = {}) {
      const settings = sessionSettings(createOptions);
      let sandbox: E2BSandbox | undefined;
      for (let attempt = 0; sandbox === undefined; attempt++) {
        try {
          sandbox = await E2BSandbox.create({
            ...connection,
            template: options.template,
            timeoutMs: settings.timeoutMs,
            envs: { ...settings.env },
          });
        } catch (cause) {
          const delay = retryDelays[attempt];
          if (delay !== undefined && isTransient(cause)) {
            await new Promise((resolve) => setTimeout(resolve, delay));
            continue;
          }
          const tries = attempt === 0 ? "" : ` (${attempt + 1} attempts)`;
          throw new SandboxError(
            "sandbox_create_failed",
            `e2b sandbox: cannot create a sandbox${tries}: ${messageOf(cause)}`,
            { cause },
          );
        }
      }
      let workdir: string;
      try {
        // The user's home differs between templates (and on e2b-local): ask the sandbox.
        const made = await sandbox.commands.run(
          `mkdir -p -- "$HOME/${WORKDIR_IN_HOME}" && cd -- "$HOME/${WORKDIR_IN_HOME}" && pwd -P`,
        );
        workdir = made.stdout.trim();
        if (!workdir.startsWith("/"))
          throw new Error(`unexpected workdir ${JSON.stringify(workdir)}`);
      } catch (cause) {
        await sandbox.kill().catch(() => undefined);
        throw new SandboxError(
          "sandbox_create_failed",
          `e2b sandbox: cannot create the workdir: ${messageOf(cause)}`,
          { cause },
        );
      }
      return createSession(sandbox, workdir);
    },
  };
}

function createSession(sandbox: E2BSandbox, workdir: string): SandboxSession {
  let closed = false;
  let closing: Promise<void> | undefined;
  // Set once the sandbox is found gone (killed elsewhere, or its timeout passed).
  let ended = false;

  const assertOpen = (what: string): void => {
    if (closed)
      throw new SandboxError("sandbox_closed", `${what}: the sandbox session has been killed`);
    if (ended)
      throw new SandboxError(
        "sandbox_closed",
        `${what}: the sandbox ${sandbox.sandboxId} has ended (killed, or its timeout passed)`,
      );
  };

  // TERM to the command's process group, KILL to whatever is left after the grace period. A
  // member counts as alive unless it is a zombie (orphans may wait long to be reaped). Plain
  // `kill -SIG -PGID`: dash's kill does not take `--`.
  const killGroup = async (pgid: number): Promise<void> => {
    const script =
      `alive() { for f in /proc/[0-9]*/stat; do read -r s 2>/dev/null < "$f" || continue; set -- \${s##*) }; ` +
      `[ "$1" != Z ] && [ "$3" = ${pgid} ] && return 0; done; return 1; }; ` +
      `kill -TERM -${pgid} 2>/dev/null || exit 0; ` +
      `i=0; while [ $i -lt ${KILL_GRACE_SECONDS * 10} ] && alive; do sleep 0.1; i=$((i + 1)); done; ` +
      `kill -KILL -${pgid} 2>/dev/null; exit 0`;
    await sandbox.commands
      .run(script, { timeoutMs: KILL_GRACE_SECONDS * 1000 + SDK_DEADLINE_SLACK_MS })
      .catch(() => undefined);
    // The shell itself, should the group be gone or never have been its own.
    await sandbox.commands.kill(pgid).catch(() => false);
  };

  /** Whether the sandbox still runs; undefined when that cannot be told (unreachable). */
  const sandboxRunning = async (): Promise<boolean | undefined> => {
    try {
      const running = await sandbox.isRunning({ requestTimeoutMs: 10_000 });
      if (!running) ended = true;
      return running;
    } catch {
      return undefined;
    }
  };

  const launch: SessionAdapter["launch"] = async (command, options, cwd, timeoutMs) => {
    let pid: number | undefined;
    let stopping: Promise<void> | undefined;
    let stopRequested = false;
    const killTree = (): Promise<void> => {
      stopRequested = true;
      if (pid === undefined) return Promise.resolve(); // done once the pid is known
      stopping ??= killGroup(pid);
      return stopping;
    };
    let callbackFailure: { readonly cause: unknown } | undefined;
    const deliver =
      (callback: RunOptions["onStdout"]) =>
      (data: string): void => {
        if (callbackFailure !== undefined) return;
        // The SDK delivers output as it comes and cannot be paused: a promise (backpressure)
        // is not waited for here, only its rejection counts, as a throw does.
        try {
          const wait = callback(data);
          if (wait instanceof Promise)
            wait.catch((cause: unknown) => {
              callbackFailure ??= { cause };
              void killTree();
            });
        } catch (cause) {
          callbackFailure = { cause };
          void killTree();
        }
      };
    const output = { onStdout: deliver(options.onStdout), onStderr: deliver(options.onStderr) };

    let handle: CommandHandle;
    try {
      handle = await sandbox.commands.run(inOwnProcessGroup(command), {
        background: true,
        cwd,
        envs: { ...options.env },
        ...output,
        timeoutMs: timeoutMs === undefined ? 0 : timeoutMs + SDK_DEADLINE_SLACK_MS, // 0: no deadline
      });
    } catch (cause) {
      if (closed)
        throw new SandboxError("sandbox_closed", "run: the sandbox session has been killed", {
          cause,
        });
      if ((await sandboxRunning()) === false)
        throw new SandboxError(
          "sandbox_closed",
          `run: the sandbox ${sandbox.sandboxId} has ended (killed, or its timeout passed)`,
          { cause },
        );
      throw new SandboxError(
        "command_start_failed",
        `run: cannot start ${JSON.stringify(command)}: ${messageOf(cause)}`,
        { cause },
      );
    }
    pid = handle.pid;
    if (stopRequested) void killTree();

    let timedOut = false;
    const timer =
      timeoutMs === undefined
        ? undefined
        : setTimeout(() => {
            timedOut = true;
            void killTree();
          }, timeoutMs);

    // Follows the command to its end; when the stream to envd drops while the sandbox still
    // runs, follows it again through commands.connect (output in between may be lost: envd
    // replays nothing, and the notice says so).
    const exitCodeOf = async (): Promise<number> => {
      for (let reconnects = 0; ; reconnects++) {
        try {
          return (await handle.wait()).exitCode;
        } catch (error) {
          if (error instanceof CommandExitError)
            return error.exitCode >= 0 ? error.exitCode : 128 + signalNumberOf(error.error);
          if (closed) return KILLED_EXIT_CODE;
          const running = await sandboxRunning();
          if (running === false)
            throw new SandboxError(
              "sandbox_closed",
              `run: the sandbox ${sandbox.sandboxId} ended while ${JSON.stringify(command)} ran (killed, or its timeout passed)`,
              { cause: error },
            );
          if (error instanceof TimeoutError && running === true) {
            // The SDK's deadline passed first: envd killed the shell, not what it started.
            timedOut = true;
            await killTree();
            return TIMEOUT_EXIT_CODE;
          }
          if (reconnects >= MAX_RECONNECTS)
            throw new SandboxError(
              "command_failed",
              `run: lost ${JSON.stringify(command)} after ${reconnects} reconnects: ${messageOf(error)}`,
              { cause: error },
            );
          const lostAt = Date.now();
          await new Promise((resolve) =>
            setTimeout(resolve, RECONNECT_DELAY_MS * (reconnects + 1)),
          );
          try {
            handle = await sandbox.commands.connect(handle.pid, { ...output, timeoutMs: 0 });
          } catch (cause) {
            if (closed) return KILLED_EXIT_CODE;
            // Gone from envd's table: it ended while nobody listened, and its exit code with it.
            throw new SandboxError(
              "command_failed",
              `run: lost ${JSON.stringify(command)}: the connection to the sandbox dropped (${messageOf(error)}) and the command could not be followed again: ${messageOf(cause)}`,
              { cause },
            );
          }
          options.onNotice?.(
            `The connection to the sandbox dropped (${messageOf(error)}) and was resumed after ${Math.round((Date.now() - lostAt) / 100) / 10} s; output printed meanwhile may be missing.`,
          );
        }
      }
    };

    const done = (async (): Promise<CommandResult> => {
      let exitCode: number;
      try {
        exitCode = await exitCodeOf();
      } finally {
        clearTimeout(timer);
      }
      return endedByAdapter(command, callbackFailure, timedOut) ?? { exitCode, timedOut: false };
    })();
    // Marks the rejection as handled: a background process nobody waits for must not crash the runner.
    done.catch(() => undefined);

    return {
      done,
      stop: async () => {
        await killTree();
        await done.catch(() => undefined);
      },
    };
  };

  const write: SessionAdapter["write"] = async (target, path, content) => {
    try {
      // The SDK takes an ArrayBuffer, not a view: copy exactly the view's bytes.
      await sandbox.files.write(
        target,
        typeof content === "string" ? content : content.slice().buffer,
      );
    } catch (cause) {
      throw new SandboxError(
        "write_failed",
        `writeFile: cannot write ${JSON.stringify(path)}: ${messageOf(cause)}`,
        { cause },
      );
    }
  };

  return {
    id: sandbox.sandboxId,
    ...sessionMethods({ workdir, assertOpen, launch, write }),
    kill() {
      closed = true;
      // A sandbox that is already gone (404) counts as killed.
      closing ??= sandbox.kill().then(
        () => undefined,
        (cause: unknown) => {
          closing = undefined; // a later kill() tries again
          throw new SandboxError(
            "sandbox_kill_failed",
            `e2b sandbox: cannot kill ${sandbox.sandboxId}: ${messageOf(cause)}`,
            { cause },
          );
        },
      );
      return closing;
    },
  };
}

/**
 * E2B runs a command as `bash -l -c`, a child of envd in envd's own process group. `setsid`
 * makes our `sh -c` the leader of a new session and group whose id is the pid E2B reports
 * (envd's child is no group leader, so setsid execs without forking), which lets killGroup
 * reach every process the command started.
 */
function inOwnProcessGroup(command: string): string {
  const quoted = `'${command.replaceAll("'", `'\\''`)}'`;
  return `if command -v setsid >/dev/null 2>&1; then exec setsid -w /bin/sh -c ${quoted}; fi; exec /bin/sh -c ${quoted}`;
}

/** Answers worth another attempt: rate limited, busy, or a server error. */
function isTransient(error: unknown): boolean {
  if (error instanceof RateLimitError || error instanceof ServiceBusyError) return true;
  const status = error instanceof E2BError ? error.statusCode : undefined;
  return status !== undefined && status >= 500;
}

function signalNumberOf(error: string | undefined): number {
  const name = /signal: (\w+)/.exec(error ?? "")?.[1];
  return (name === undefined ? undefined : SIGNAL_NUMBERS[name]) ?? 9;
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
