import { spawn } from "node:child_process";
import { randomUUID } from "node:crypto";
import { once } from "node:events";
import { statSync } from "node:fs";
import { lstat, mkdir, mkdtemp, realpath, rm, stat, writeFile } from "node:fs/promises";
import { constants, tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
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

export interface LocalSandboxOptions {
  /** Where session directories are made; default the OS temporary directory. */
  readonly rootDir?: string;
  /** How long a process group gets between SIGTERM and SIGKILL; default 5 s. */
  readonly killGraceMs?: number;
}

const DEFAULT_KILL_GRACE_MS = 5_000;
// Once a command's shell has exited, its output is read until the pipes close. A process it left
// running in the background may hold them open for ever; then reading stops once they have been
// quiet this long (or at the cap), as E2B's envd stops at the exit.
const DRAIN_QUIET_MS = 50;
const DRAIN_CAP_MS = 1_000;

/**
 * Builds run as child processes of this machine, each session in a fresh temporary directory.
 * Each command runs as `sh -c` in its own process group, so a timeout or a kill ends everything
 * it started. Commands see a minimal environment: nothing of the runner's own (its tokens) leaks
 * into a build.
 */
export function localSandbox(options: LocalSandboxOptions = {}): Sandbox {
  const rootDir = resolve(options.rootDir ?? tmpdir());
  if (statSync(rootDir, { throwIfNoEntry: false })?.isDirectory() !== true)
    throw new SandboxError("bad_config", `local sandbox: rootDir ${rootDir} is not a directory`);
  const killGraceMs = options.killGraceMs ?? DEFAULT_KILL_GRACE_MS;
  if (!(Number.isSafeInteger(killGraceMs) && killGraceMs >= 0)) {
    throw new SandboxError(
      "bad_config",
      `local sandbox: killGraceMs must be a non-negative integer, got ${String(killGraceMs)}`,
    );
  }
  // Only what a build needs from the runner's environment; read once, like any configuration.
  const inherited: Record<string, string> = {
    PATH: process.env.PATH ?? "/usr/local/bin:/usr/bin:/bin",
  };
  for (const name of ["LANG", "LC_ALL"]) {
    const value = process.env[name];
    if (value !== undefined) inherited[name] = value;
  }

  return {
    name: "local",
    async create(createOptions = {}) {
      checkEnv(createOptions.env, "create");
      checkTimeout(createOptions.timeoutMs, "create");
      let workdir: string;
      try {
        // realpath: the workdir is compared with resolved paths (os.tmpdir() may be a symlink).
        workdir = await realpath(await mkdtemp(join(rootDir, "build-")));
      } catch (cause) {
        throw new SandboxError(
          "sandbox_create_failed",
          `local sandbox: cannot create a directory in ${rootDir}`,
          { cause },
        );
      }
      const env = { ...inherited, HOME: workdir, CI: "true", ...createOptions.env };
      return createSession(
        workdir,
        env,
        createOptions.timeoutMs ?? DEFAULT_SESSION_TIMEOUT_MS,
        killGraceMs,
      );
    },
  };
}

// One spawned command. `done` settles when it has ended (rejecting only with
// output_callback_failed); stop() sends SIGTERM to its group, SIGKILL after the grace period, and
// resolves once it has ended; groupAlive() says whether any process of its group is left.
interface LocalProcess {
  readonly done: Promise<CommandResult>;
  stop(): Promise<void>;
  groupAlive(): boolean;
}

function createSession(
  workdir: string,
  env: Readonly<Record<string, string>>,
  timeoutMs: number,
  killGraceMs: number,
): SandboxSession {
  // Commands whose process group may still have members: those running and those that left
  // something behind. kill() ends them all.
  const live = new Set<LocalProcess>();
  let closed = false;
  let closing: Promise<void> | undefined;

  const assertOpen = (what: string): void => {
    if (closed)
      throw new SandboxError("sandbox_closed", `${what}: the sandbox session has been killed`);
  };

  const launch = async (
    command: string,
    options: RunOptions,
    defaultTimeoutMs: number | undefined,
  ): Promise<LocalProcess> => {
    assertOpen("run");
    checkEnv(options.env, "run");
    checkTimeout(options.timeoutMs, "run");
    const cwd = resolveInWorkdir(workdir, options.cwd ?? ".", "run cwd", true);
    const cwdIsDirectory = await stat(cwd).then(
      (info) => info.isDirectory(),
      () => false,
    );
    if (!cwdIsDirectory)
      throw new SandboxError("command_start_failed", `run: the cwd ${cwd} is not a directory`);
    assertOpen("run");
    const proc = await spawnCommand(command, {
      cwd,
      env: { ...env, ...options.env },
      timeoutMs: options.timeoutMs ?? defaultTimeoutMs,
      killGraceMs,
      onStdout: options.onStdout,
      onStderr: options.onStderr,
    });
    live.add(proc);
    const forget = (): void => {
      if (!proc.groupAlive()) live.delete(proc);
    };
    void proc.done.then(forget, forget);
    // kill() may have begun while the process was being spawned.
    if (closed) {
      await proc.stop();
      assertOpen("run");
    }
    return proc;
  };

  // Like an E2B sandbox, a session ends itself when it outlives its timeout. A failure here is
  // reported by the runner's own kill(), which retries the removal.
  const lifetime = setTimeout(() => {
    kill().catch(() => undefined);
  }, timeoutMs);
  lifetime.unref();

  function kill(): Promise<void> {
    closed = true;
    clearTimeout(lifetime);
    closing ??= (async () => {
      await Promise.all([...live].map((proc) => proc.stop()));
      live.clear();
      try {
        await rm(workdir, { recursive: true, force: true, maxRetries: 3 });
      } catch (cause) {
        closing = undefined; // a later kill() tries the removal again
        throw new SandboxError("sandbox_kill_failed", `local sandbox: cannot remove ${workdir}`, {
          cause,
        });
      }
    })();
    return closing;
  }

  return {
    id: `local-${randomUUID()}`,
    workdir,
    async run(command, options) {
      const proc = await launch(command, options, DEFAULT_RUN_TIMEOUT_MS);
      return proc.done;
    },
    async start(command, options): Promise<BackgroundProcess> {
      const proc = await launch(command, options, undefined);
      return { kill: () => proc.stop(), wait: () => proc.done };
    },
    async writeFile(path, content) {
      assertOpen("writeFile");
      const target = resolveInWorkdir(workdir, path, "writeFile", false);
      await assertNoSymlinkEscape(workdir, target, path);
      try {
        await mkdir(dirname(target), { recursive: true });
        await writeFile(target, content);
      } catch (cause) {
        throw new SandboxError("write_failed", `writeFile: cannot write ${JSON.stringify(path)}`, {
          cause,
        });
      }
    },
    kill,
  };
}

/**
 * The build writes into its workdir too, so a symlink there could point a later writeFile at the
 * runner's own files. Every existing component of the path must resolve inside the workdir.
 */
async function assertNoSymlinkEscape(workdir: string, target: string, path: string): Promise<void> {
  let current = workdir;
  for (const part of target.slice(workdir.length + 1).split("/")) {
    current = `${current}/${part}`;
    const info = await lstat(current).catch(() => undefined);
    if (info === undefined) return; // the rest is created fresh
    if (!info.isSymbolicLink()) continue;
    const real = await realpath(current).catch(() => undefined);
    if (real === undefined || !(real === workdir || real.startsWith(`${workdir}/`))) {
      throw new SandboxError(
        "bad_path",
        `writeFile: ${JSON.stringify(path)} goes through a symlink that leaves the workdir`,
      );
    }
    current = real;
  }
}

interface SpawnSettings {
  readonly cwd: string;
  readonly env: Readonly<Record<string, string>>;
  readonly timeoutMs: number | undefined;
  readonly killGraceMs: number;
  readonly onStdout: RunOptions["onStdout"];
  readonly onStderr: RunOptions["onStderr"];
}

async function spawnCommand(command: string, settings: SpawnSettings): Promise<LocalProcess> {
  // detached: the shell leads a new session and process group (pgid = its pid), so signalling
  // the group reaches everything it started, however deep.
  const child = spawn("/bin/sh", ["-c", command], {
    cwd: settings.cwd,
    env: settings.env,
    detached: true,
    stdio: ["ignore", "pipe", "pipe"],
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>(
    (resolveExit) => {
      child.once("exit", (code, signal) => resolveExit({ code, signal }));
    },
  );
  let isClosed = false;
  const closed = new Promise<void>((resolveClose) => {
    child.once("close", () => {
      isClosed = true;
      resolveClose();
    });
  });
  try {
    await once(child, "spawn");
  } catch (cause) {
    throw new SandboxError("command_start_failed", `run: cannot start ${JSON.stringify(command)}`, {
      cause,
    });
  }
  const pgid = child.pid;
  if (pgid === undefined)
    throw new SandboxError("command_start_failed", `run: ${JSON.stringify(command)} has no pid`);
  // After a successful spawn the only 'error' left is a failed kill(), which signalGroup covers.
  child.on("error", () => undefined);

  // From here on nothing awaits until the listeners are in place; the pipes hold the output meanwhile.
  const signalGroup = (signal: NodeJS.Signals): void => {
    try {
      process.kill(-pgid, signal);
    } catch {
      // ESRCH: the whole group is gone already.
    }
  };
  const groupAlive = (): boolean => {
    try {
      process.kill(-pgid, 0);
      return true;
    } catch (error) {
      return (error as NodeJS.ErrnoException).code === "EPERM";
    }
  };

  let stopping: Promise<void> | undefined;
  const stop = (): Promise<void> => {
    stopping ??= (async () => {
      signalGroup("SIGTERM");
      await Promise.race([settled(), sleep(settings.killGraceMs)]);
      // Also reaches members that ignore SIGTERM or outlived the shell.
      if (groupAlive()) signalGroup("SIGKILL");
      await settled();
    })();
    return stopping;
  };

  let lastOutputAt = Date.now();
  let callbackFailure: { readonly cause: unknown } | undefined;
  const deliver = (callback: RunOptions["onStdout"], chunk: Buffer): void => {
    lastOutputAt = Date.now();
    if (callbackFailure !== undefined) return;
    try {
      callback(chunk);
    } catch (cause) {
      callbackFailure = { cause };
      void stop();
    }
  };
  child.stdout.on("data", (chunk: Buffer) => deliver(settings.onStdout, chunk));
  child.stderr.on("data", (chunk: Buffer) => deliver(settings.onStderr, chunk));

  let timedOut = false;
  let hasExited = false;
  const timer =
    settings.timeoutMs === undefined
      ? undefined
      : setTimeout(() => {
          if (hasExited) return;
          timedOut = true;
          void stop();
        }, settings.timeoutMs);

  const done = (async (): Promise<CommandResult> => {
    const { code, signal } = await exited;
    hasExited = true;
    clearTimeout(timer);
    await drain();
    if (callbackFailure !== undefined) {
      throw new SandboxError(
        "output_callback_failed",
        `run: an output callback threw; ${JSON.stringify(command)} was killed`,
        {
          cause: callbackFailure.cause,
        },
      );
    }
    if (timedOut) return { exitCode: TIMEOUT_EXIT_CODE, timedOut: true };
    const signalNumber = signal === null ? undefined : constants.signals[signal];
    return { exitCode: code ?? 128 + (signalNumber ?? 0), timedOut: false };
  })();
  // Marks the rejection as handled: a background process nobody waits for must not crash the runner.
  done.catch(() => undefined);
  const settled = (): Promise<unknown> => done.catch(() => undefined);

  // Reads what the shell wrote until its pipes close, or, when something it left running holds
  // them open, until they have been quiet for a while.
  async function drain(): Promise<void> {
    const exitAt = Date.now();
    while (!isClosed) {
      await Promise.race([closed, sleep(DRAIN_QUIET_MS)]);
      // A stalled event loop runs timers before it reads the pipes: let one poll phase pass.
      await new Promise<void>((resolveImmediate) => setImmediate(resolveImmediate));
      if (isClosed) return;
      const now = Date.now();
      if (now - Math.max(lastOutputAt, exitAt) >= DRAIN_QUIET_MS || now - exitAt >= DRAIN_CAP_MS)
        break;
    }
    if (!isClosed) {
      child.stdout.destroy();
      child.stderr.destroy();
    }
  }

  return { done, stop, groupAlive };
}
