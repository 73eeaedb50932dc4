import { spawn } from "node:child_process";
import { randomUUID } from "node:crypto";
import { once } from "node:events";
import { readdirSync, readFileSync } from "node:fs";
import { constants } from "node:os";
import type { Readable } from "node:stream";
import { setTimeout as sleep } from "node:timers/promises";
import { type BuildLimits, bwrapJail } from "./bwrap-jail.ts";
import { hostJail } from "./host-jail.ts";
import type { CommandLine, Jail, JailFactory } from "./jail.ts";
import type {
  CommandResult,
  RunOptions,
  Sandbox,
  SandboxSession,
  SessionAdapter,
  StartedCommand,
} from "./types.ts";
import { endedByAdapter, SandboxError, sessionMethods, sessionSettings } from "./types.ts";

export interface LocalSandboxOptions {
  /**
   * `bwrap` (the default): each build isolated by bubblewrap, see bwrap-jail.ts. `none`: bare
   * processes in a directory of this machine, for development only (SANDBOX=local-unsafe).
   */
  readonly isolation?: "bwrap" | "none";
  /** With isolation `none`: where session directories are made; default the OS temporary directory. */
  readonly rootDir?: string;
  /** How long a process group gets between SIGTERM and SIGKILL; default 5 s. */
  readonly killGraceMs?: number;
  /** With isolation `bwrap`: per-build limits on memory, processes, CPU time and disk. */
  readonly limits?: BuildLimits;
  /** With isolation `bwrap`: names of the runner's variables builds get beyond the CA-trust ones. */
  readonly passEnv?: readonly string[];
}

const DEFAULT_KILL_GRACE_MS = 5_000;
// Once a command's shell has exited, its output is read until the pipes close. A process it left
// running in the background may hold them open for ever; then reading stops once they have been
// quiet this long (or at the cap), as E2B's envd stops at the exit.
const DRAIN_QUIET_MS = 50;
const DRAIN_CAP_MS = 1_000;

/**
 * Builds run as processes of this machine, by default each session isolated in its own
 * namespaces and uid (bwrap-jail.ts). Each command runs as `sh -c` in its own process group,
 * so a timeout or a kill ends everything it started. Commands see a minimal environment:
 * nothing of the runner's own (its tokens) leaks into a build.
 */
export function localSandbox(options: LocalSandboxOptions = {}): Sandbox & {
  /** True when builds are isolated from the runner (not SANDBOX=local-unsafe). */
  readonly isolated: boolean;
} {
  const killGraceMs = options.killGraceMs ?? DEFAULT_KILL_GRACE_MS;
  if (!(Number.isSafeInteger(killGraceMs) && killGraceMs >= 0)) {
    throw new SandboxError(
      "bad_config",
      `local sandbox: killGraceMs must be a non-negative integer, got ${String(killGraceMs)}`,
    );
  }
  const jails: JailFactory =
    options.isolation === "none"
      ? hostJail(options.rootDir)
      : bwrapJail({
          ...(options.limits === undefined ? {} : { limits: options.limits }),
          ...(options.passEnv === undefined ? {} : { passEnv: options.passEnv }),
        });
  const open = new Set<SandboxSession>();
  let shutDown = false;

  return {
    name: jails.isolated ? "local" : "local-unsafe",
    isolated: jails.isolated,
    async create(createOptions = {}) {
      const settings = sessionSettings(createOptions);
      if (shutDown) throw new SandboxError("sandbox_closed", "create: the sandbox is shut down");
      const jail = await jails.open();
      if (shutDown) {
        await jail.destroy();
        throw new SandboxError("sandbox_closed", "create: the sandbox is shut down");
      }
      const session = createSession(
        jail,
        { ...jail.env, ...settings.env },
        settings.timeoutMs,
        killGraceMs,
        () => open.delete(session),
      );
      open.add(session);
      return session;
    },
    async shutdown() {
      shutDown = true;
      await Promise.allSettled([...open].map((session) => session.kill()));
    },
  };
}

// One spawned command. `done` settles when it has ended (rejecting only with
// output_callback_failed); stop() sends SIGTERM to its group, SIGKILL after the grace period, and
// resolves once it has ended; groupAlive() says whether any process of its group is left.
interface LocalProcess extends StartedCommand {
  groupAlive(): boolean;
}

function createSession(
  jail: Jail,
  env: Readonly<Record<string, string>>,
  timeoutMs: number,
  killGraceMs: number,
  onClosed: () => void,
): SandboxSession {
  const workdir = jail.workdir;
  // Commands whose process group may still have members: those running and those that left
  // something behind. kill() ends them all.
  const live = new Set<LocalProcess>();
  let closed = false;
  let closing: Promise<void> | undefined;

  const assertOpen = (what: string): void => {
    if (closed)
      throw new SandboxError("sandbox_closed", `${what}: the sandbox session has been killed`);
  };

  const launch: SessionAdapter["launch"] = async (command, options, cwd, timeoutMs) => {
    const ended = jail.ended();
    if (ended !== undefined) throw new SandboxError("command_start_failed", `run: ${ended}`);
    if (!(await jail.isDirectory(cwd)))
      throw new SandboxError("command_start_failed", `run: the cwd ${cwd} is not a directory`);
    assertOpen("run");
    const proc = await spawnCommand(command, jail, {
      commandLine: jail.commandLine(cwd, command),
      env: { ...env, ...options.env },
      timeoutMs,
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
        await jail.destroy();
      } catch (cause) {
        closing = undefined; // a later kill() tries the removal again
        throw new SandboxError("sandbox_kill_failed", `local sandbox: cannot remove ${workdir}`, {
          cause,
        });
      }
      onClosed();
    })();
    return closing;
  }

  const write: SessionAdapter["write"] = async (target, path, content) => {
    try {
      await jail.writeFile(target, content);
    } catch (cause) {
      if (cause instanceof SandboxError) throw cause;
      throw new SandboxError("write_failed", `writeFile: cannot write ${JSON.stringify(path)}`, {
        cause,
      });
    }
  };

  return {
    id: `local-${randomUUID()}`,
    ...sessionMethods({ workdir, assertOpen, launch, write }),
    kill,
  };
}

/** Host pids of the members of a process group (field 5 of /proc/PID/stat). */
function groupMembers(pgid: number): number[] {
  const members: number[] = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const fields = readFileSync(`/proc/${entry}/stat`, "utf8").split(") ")[1]?.split(" ");
      if (fields?.[2] === String(pgid)) members.push(Number(entry));
    } catch {
      // gone meanwhile
    }
  }
  return members;
}

interface SpawnSettings {
  readonly commandLine: CommandLine;
  readonly env: Readonly<Record<string, string>>;
  readonly timeoutMs: number | undefined;
  readonly killGraceMs: number;
  readonly onStdout: RunOptions["onStdout"];
  readonly onStderr: RunOptions["onStderr"];
}

async function spawnCommand(
  command: string,
  jail: Jail,
  settings: SpawnSettings,
): Promise<LocalProcess> {
  const startedAt = Date.now();
  // detached: the command leads a new session and process group (pgid = its pid), so signalling
  // the group reaches everything it started, however deep.
  const child = spawn(settings.commandLine.file, [...settings.commandLine.args], {
    cwd: settings.commandLine.cwd,
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

  let leaderExited = false;
  child.once("exit", () => {
    leaderExited = true;
  });
  // The group's members that are this command's. Once every member is gone its id may be
  // reused by another detached process (pids wrap at 32768 on busy machines), so in a jail that
  // can tell its processes apart, a member counts only if the jail owns it (or it is the leader,
  // still running).
  const members = (): number[] =>
    groupMembers(pgid).filter(
      (pid) => (pid === pgid && !leaderExited) || (pid !== pgid && jail.owns(pid)),
    );

  // From here on nothing awaits until the listeners are in place; the pipes hold the output meanwhile.
  const signalGroup = (signal: NodeJS.Signals): void => {
    if (settings.commandLine.relaysExit) {
      // The leader (nsenter) would die of SIGTERM at once and report it, while the command
      // inside may ignore it: signal the others; the leader ends when the command does.
      for (const pid of members()) {
        if (pid === pgid && signal !== "SIGKILL") continue;
        try {
          process.kill(pid, signal);
        } catch {}
      }
      return;
    }
    try {
      process.kill(-pgid, signal);
    } catch {
      // ESRCH: the whole group is gone already.
    }
  };
  const groupAlive = (): boolean => {
    if (settings.commandLine.relaysExit) return members().length > 0;
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
  // Streams held back because the callback asked to wait (backpressure); output after the
  // exit is read in full once they resume.
  let paused = 0;
  const fail = (cause: unknown): void => {
    callbackFailure ??= { cause };
    void stop();
  };
  const deliver = (stream: Readable, callback: RunOptions["onStdout"], chunk: Buffer): void => {
    lastOutputAt = Date.now();
    if (callbackFailure !== undefined) return;
    let wait: unknown;
    try {
      wait = callback(chunk);
    } catch (cause) {
      fail(cause);
      return;
    }
    if (!(wait instanceof Promise)) return;
    paused += 1;
    stream.pause();
    wait.catch(fail).finally(() => {
      paused -= 1;
      lastOutputAt = Date.now();
      stream.resume();
    });
  };
  // A pipe reset by a command killed mid-write ends like a closed one (its exit says enough).
  child.stdout.on("error", () => undefined);
  child.stderr.on("error", () => undefined);
  child.stdout.on("data", (chunk: Buffer) => deliver(child.stdout, settings.onStdout, chunk));
  child.stderr.on("data", (chunk: Buffer) => deliver(child.stderr, settings.onStderr, chunk));

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
    const byAdapter = endedByAdapter(command, callbackFailure, timedOut);
    if (byAdapter !== undefined) return byAdapter;
    const signalNumber = signal === null ? undefined : constants.signals[signal];
    const exitCode = code ?? 128 + (signalNumber ?? 0);
    const limit = exitCode === 0 ? undefined : await jail.limitExceeded(startedAt, exitCode);
    return limit === undefined
      ? { exitCode, timedOut: false }
      : { exitCode, timedOut: false, limit };
  })();
  // Marks the rejection as handled: a background process nobody waits for must not crash the runner.
  done.catch(() => undefined);
  const settled = (): Promise<unknown> => done.catch(() => undefined);

  // Reads what the shell wrote until its pipes close, or, when something it left running holds
  // them open, until they have been quiet for a while.
  async function drain(): Promise<void> {
    let exitAt = Date.now();
    while (!isClosed) {
      await Promise.race([closed, sleep(DRAIN_QUIET_MS)]);
      if (paused > 0) {
        // Not quiet: the log is still taking what came before; the cap counts from the resume.
        exitAt = Date.now();
        continue;
      }
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
