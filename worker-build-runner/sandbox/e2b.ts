import type { CommandHandle } from "e2b";
import { CommandExitError, Sandbox as E2BSandbox, TimeoutError } from "e2b";
import type {
  BackgroundProcess,
  CommandResult,
  RunOptions,
  Sandbox,
  SandboxSession,
} from "./types.ts";
import {
  checkEnv,
  checkTimeout,
  DEFAULT_RUN_TIMEOUT_MS,
  DEFAULT_SESSION_TIMEOUT_MS,
  resolveInWorkdir,
  SandboxError,
  TIMEOUT_EXIT_CODE,
} from "./types.ts";

export interface E2BSandboxOptions {
  /** Default: the E2B_API_KEY environment variable. */
  readonly apiKey?: string;
  /** Sandbox template name or id; default E2B's `base`. */
  readonly template?: string;
  /** Default: the E2B_DOMAIN environment variable, else e2b.app (the SDK decides). */
  readonly domain?: string;
}

const WORKDIR = "/home/user/app";
const KILL_GRACE_SECONDS = 5;
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
 * Builds run in an E2B cloud sandbox, one per session, in /home/user/app. The runner's
 * environment never reaches it: a command sees envd's minimal environment (PATH, HOME, USER),
 * CI=true, the session's env and its own.
 */
export function e2bSandbox(options: E2BSandboxOptions = {}): Sandbox {
  const apiKey = options.apiKey ?? process.env.E2B_API_KEY ?? "";
  const problems: string[] = [];
  if (apiKey === "") problems.push("E2B_API_KEY is not set (nor the apiKey option)");
  if (options.template === "") problems.push("template is empty");
  if (options.domain === "") problems.push("domain is empty");
  if (problems.length > 0)
    throw new SandboxError("bad_config", `e2b sandbox: ${problems.join("; ")}`);
  const connection = { apiKey, domain: options.domain };

  return {
    name: "e2b",
    async create(createOptions = {}) {
      checkEnv(createOptions.env, "create");
      checkTimeout(createOptions.timeoutMs, "create");
      let sandbox: E2BSandbox;
      try {
        sandbox = await E2BSandbox.create({
          ...connection,
          template: options.template,
          timeoutMs: createOptions.timeoutMs ?? DEFAULT_SESSION_TIMEOUT_MS,
          envs: { CI: "true", ...createOptions.env },
        });
      } catch (cause) {
        throw new SandboxError(
          "sandbox_create_failed",
          `e2b sandbox: cannot create a sandbox: ${messageOf(cause)}`,
          { cause },
        );
      }
      try {
        await sandbox.files.makeDir(WORKDIR);
      } catch (cause) {
        await sandbox.kill().catch(() => undefined);
        throw new SandboxError(
          "sandbox_create_failed",
          `e2b sandbox: cannot create ${WORKDIR}: ${messageOf(cause)}`,
          { cause },
        );
      }
      return createSession(sandbox);
    },
  };
}

interface E2BProcess {
  readonly done: Promise<CommandResult>;
  stop(): Promise<void>;
}

function createSession(sandbox: E2BSandbox): SandboxSession {
  let closed = false;
  let closing: Promise<void> | undefined;

  const assertOpen = (what: string): void => {
    if (closed)
      throw new SandboxError("sandbox_closed", `${what}: the sandbox session has been killed`);
  };

  // TERM to the command's process group, KILL to whatever is left after the grace period. A
  // member counts as alive unless it is a zombie (orphans may wait long to be reaped). Plain
  // `kill -SIG -PGID`: dash's kill does not take `--`.
  const killGroup = async (handle: CommandHandle): Promise<void> => {
    const pgid = handle.pid;
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
    await handle.kill().catch(() => false);
  };

  const launch = async (
    command: string,
    options: RunOptions,
    timeoutMs: number | undefined,
  ): Promise<E2BProcess> => {
    assertOpen("run");
    checkEnv(options.env, "run");
    checkTimeout(options.timeoutMs, "run");
    const cwd = resolveInWorkdir(WORKDIR, options.cwd ?? ".", "run cwd", true);

    let handle: CommandHandle | undefined;
    let stopping: Promise<void> | undefined;
    let stopRequested = false;
    const killTree = (): Promise<void> => {
      stopRequested = true;
      if (handle === undefined) return Promise.resolve(); // done once the handle exists
      stopping ??= killGroup(handle);
      return stopping;
    };
    let callbackFailure: { readonly cause: unknown } | undefined;
    const deliver =
      (callback: RunOptions["onStdout"]) =>
      (data: string): void => {
        if (callbackFailure !== undefined) return;
        try {
          callback(data);
        } catch (cause) {
          callbackFailure = { cause };
          void killTree();
        }
      };

    try {
      handle = await sandbox.commands.run(inOwnProcessGroup(command), {
        background: true,
        cwd,
        envs: { ...options.env },
        onStdout: deliver(options.onStdout),
        onStderr: deliver(options.onStderr),
        timeoutMs: timeoutMs === undefined ? 0 : timeoutMs + SDK_DEADLINE_SLACK_MS, // 0: no deadline
      });
    } catch (cause) {
      if (closed)
        throw new SandboxError("sandbox_closed", "run: the sandbox session has been killed", {
          cause,
        });
      throw new SandboxError(
        "command_start_failed",
        `run: cannot start ${JSON.stringify(command)}: ${messageOf(cause)}`,
        { cause },
      );
    }
    const started = handle;
    if (stopRequested) void killTree();

    let timedOut = false;
    const timer =
      timeoutMs === undefined
        ? undefined
        : setTimeout(() => {
            timedOut = true;
            void killTree();
          }, timeoutMs);

    const done = (async (): Promise<CommandResult> => {
      let exitCode: number;
      try {
        exitCode = (await started.wait()).exitCode;
      } catch (error) {
        if (error instanceof CommandExitError) {
          exitCode = error.exitCode >= 0 ? error.exitCode : 128 + signalNumberOf(error.error);
        } else if (closed) {
          exitCode = KILLED_EXIT_CODE;
        } else if (error instanceof TimeoutError) {
          // The SDK's deadline passed first: envd killed the shell, not what it started.
          timedOut = true;
          exitCode = TIMEOUT_EXIT_CODE;
          await killTree();
        } else {
          throw new SandboxError(
            "command_failed",
            `run: lost ${JSON.stringify(command)}: ${messageOf(error)}`,
            { cause: error },
          );
        }
      } finally {
        clearTimeout(timer);
      }
      if (callbackFailure !== undefined) {
        throw new SandboxError(
          "output_callback_failed",
          `run: an output callback threw; ${JSON.stringify(command)} was killed`,
          {
            cause: callbackFailure.cause,
          },
        );
      }
      return timedOut
        ? { exitCode: TIMEOUT_EXIT_CODE, timedOut: true }
        : { exitCode, timedOut: false };
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

  return {
    id: sandbox.sandboxId,
    workdir: WORKDIR,
    async run(command, options) {
      const proc = await launch(command, options, options.timeoutMs ?? DEFAULT_RUN_TIMEOUT_MS);
      return proc.done;
    },
    async start(command, options): Promise<BackgroundProcess> {
      const proc = await launch(command, options, options.timeoutMs);
      return { kill: () => proc.stop(), wait: () => proc.done };
    },
    async writeFile(path, content) {
      assertOpen("writeFile");
      const target = resolveInWorkdir(WORKDIR, path, "writeFile", false);
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
    },
    kill() {
      closed = true;
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

function signalNumberOf(error: string | undefined): number {
  const name = /signal: (\w+)/.exec(error ?? "")?.[1];
  return (name === undefined ? undefined : SIGNAL_NUMBERS[name]) ?? 9;
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
