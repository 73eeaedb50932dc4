import { randomBytes, randomUUID } from "node:crypto";
import type { MessageInitShape } from "@bufbuild/protobuf";
import type { SandboxSession } from "../../worker-build-runner/sandbox/types.ts";
import type { ProcessConfig, ProcessEventSchema } from "./generated/process/process_pb.ts";

/** One event of a process, as handlers yield it (start, data, end, keepalive). */
export type ProcessEventInit = NonNullable<MessageInitShape<typeof ProcessEventSchema>["event"]>;

/** One process started through envd's Start, as envd tracks it until it ends. */
export interface HostedProcess {
  readonly pid: number;
  readonly config: Pick<ProcessConfig, "cmd" | "args" | "envs" | "cwd">;
  readonly tag: string | undefined;
  /** Every event from now on (data, then end), until the returned function unsubscribes. */
  subscribe(listener: (event: ProcessEventInit) => void): () => void;
}

/** A sandbox the server created: an E2B sandbox on the outside, a sandbox session inside. */
export interface HostedSandbox {
  readonly id: string;
  readonly templateId: string;
  readonly clientId: string;
  readonly envdAccessToken: string;
  readonly metadata: Readonly<Record<string, string>>;
  readonly startedAt: Date;
  /** When its lifetime ends; `setTimeout` moves it. */
  readonly endAt: Date;
  readonly session: SandboxSession;
  /** Where envd resolves relative paths: the session's $HOME. */
  readonly home: string;
  readonly running: boolean;
  readonly processes: ReadonlyMap<number, HostedProcess>;
  setTimeout(ms: number): void;
  /** Starts `config` as envd would: a child of a shell that is no process group leader. */
  start(
    config: HostedProcess["config"],
    tag: string | undefined,
    onEvent: (event: ProcessEventInit) => void,
  ): Promise<HostedProcess>;
  /** Sends a signal to one process by pid, as envd does (not to its group). */
  signal(pid: number, signal: "KILL" | "TERM"): Promise<void>;
  /** Ends every process and frees the session; `reason` is what envd calls report afterwards. */
  kill(reason: "killed" | "timeout"): Promise<void>;
  /** Resolves when the sandbox has ended, however. */
  readonly ended: Promise<"killed" | "timeout">;
}

export interface HostSandboxOptions {
  readonly templateId: string;
  readonly timeoutMs: number;
  readonly metadata: Readonly<Record<string, string>>;
  readonly session: SandboxSession;
}

const MAX_SIGNAL = 64;
const SIGNAL_NAMES: Readonly<Record<number, string>> = {
  1: "hangup",
  2: "interrupt",
  3: "quit",
  6: "aborted",
  9: "killed",
  15: "terminated",
};

export async function hostSandbox(options: HostSandboxOptions): Promise<HostedSandbox> {
  const { session } = options;
  const home = (await captureText(session, 'printf %s "$HOME"')).trim() || session.workdir;
  const processes = new Map<number, HostedProcess>();
  let running = true;
  let endAt = new Date(Date.now() + options.timeoutMs);
  let resolveEnded: (reason: "killed" | "timeout") => void = () => undefined;
  const ended = new Promise<"killed" | "timeout">((resolve) => (resolveEnded = resolve));
  let killing: Promise<void> | undefined;

  const kill = (reason: "killed" | "timeout"): Promise<void> => {
    killing ??= (async () => {
      running = false;
      clearTimeout(lifetime);
      resolveEnded(reason);
      // A command that made itself a session leader (setsid) is out of the session's reach
      // here; a VM going away takes it along, so take it along too.
      const pids = [...processes.keys()];
      if (pids.length > 0) {
        const targets = pids.flatMap((pid) => [`-${pid}`, `${pid}`]).join(" ");
        await captureText(session, `kill -KILL ${targets} 2>/dev/null; exit 0`).catch(
          () => undefined,
        );
      }
      await session.kill();
    })();
    return killing;
  };

  let lifetime = setTimeout(() => void kill("timeout").catch(() => undefined), options.timeoutMs);
  lifetime.unref();

  const hosted: HostedSandbox = {
    id: `i${randomBytes(10).toString("hex")}`,
    templateId: options.templateId,
    clientId: randomUUID().slice(0, 8),
    envdAccessToken: randomBytes(24).toString("base64url"),
    metadata: options.metadata,
    startedAt: new Date(),
    get endAt() {
      return endAt;
    },
    session,
    home,
    get running() {
      return running;
    },
    processes,
    ended,
    setTimeout(ms) {
      clearTimeout(lifetime);
      endAt = new Date(Date.now() + ms);
      lifetime = setTimeout(() => void kill("timeout").catch(() => undefined), ms);
      lifetime.unref();
    },
    async start(config, tag, onEvent) {
      const marker = `__e2b_local_pid_${randomBytes(8).toString("hex")}=`;
      // The outer shell (the session's process group leader) forks the envd child and waits for
      // it, so the child is no group leader, as under envd: a command that runs `setsid` then
      // keeps its pid. The child prints its pid first, on stderr, behind a marker nobody else
      // can know, and the marker line is taken out of the output.
      const child = [config.cmd, ...config.args].map(shellQuote).join(" ");
      const command = `/bin/sh -c 'printf "%s%s\\n" "$0" "$$" >&2; exec "$@"' ${shellQuote(marker)} ${child} & wait $!`;
      const listeners = new Set<(event: ProcessEventInit) => void>([onEvent]);
      const emit = (event: ProcessEventInit): void => {
        for (const listener of listeners) listener(event);
      };
      let resolvePid: (pid: number) => void = () => undefined;
      let rejectPid: (error: Error) => void = () => undefined;
      const pidKnown = new Promise<number>((resolve, reject) => {
        resolvePid = resolve;
        rejectPid = reject;
      });
      let head: Buffer | null = Buffer.alloc(0);
      const background = await session.start(command, {
        ...(config.cwd === undefined ? {} : { cwd: config.cwd }),
        env: config.envs,
        onStdout: (chunk) => emit({ case: "data", value: dataEvent("stdout", chunk) }),
        onStderr: (chunk) => {
          if (head === null) {
            emit({ case: "data", value: dataEvent("stderr", chunk) });
            return;
          }
          head = Buffer.concat([head, toBuffer(chunk)]);
          const newline = head.indexOf(0x0a);
          if (newline < 0) return;
          const line = head.subarray(0, newline).toString("latin1");
          const rest = head.subarray(newline + 1);
          head = null;
          const pid = line.startsWith(marker) ? Number(line.slice(marker.length)) : Number.NaN;
          if (!Number.isSafeInteger(pid)) {
            rejectPid(new Error("the process did not report its pid"));
            return;
          }
          resolvePid(pid);
          if (rest.length > 0) emit({ case: "data", value: dataEvent("stderr", rest) });
        },
      });
      void background.wait().then(
        (result) =>
          rejectPid(new Error(`the process ended (${result.exitCode}) before it started`)),
        (error: unknown) => rejectPid(error instanceof Error ? error : new Error(String(error))),
      );
      const pid = await pidKnown;
      const process: HostedProcess = {
        pid,
        config,
        tag,
        subscribe(listener) {
          listeners.add(listener);
          return () => listeners.delete(listener);
        },
      };
      processes.set(pid, process);
      void background.wait().then(
        (result) => {
          processes.delete(pid);
          emit({ case: "end", value: endEvent(result.exitCode) });
        },
        (error: unknown) => {
          processes.delete(pid);
          const message = error instanceof Error ? error.message : String(error);
          emit({
            case: "end",
            value: { exitCode: -1, exited: false, status: message, error: message },
          });
        },
      );
      return process;
    },
    async signal(pid, signal) {
      await captureText(session, `kill -${signal} ${pid} 2>/dev/null; exit 0`);
    },
    kill,
  };
  return hosted;
}

type DataValue = Extract<ProcessEventInit, { case: "data" }>["value"];
type EndValue = Extract<ProcessEventInit, { case: "end" }>["value"];

function dataEvent(stream: "stdout" | "stderr", chunk: string | Uint8Array): DataValue {
  return { output: { case: stream, value: toBuffer(chunk) } };
}

/** envd reports how a process ended as Go's os.ProcessState prints it. */
function endEvent(exitCode: number): EndValue {
  if (exitCode > 128 && exitCode <= 128 + MAX_SIGNAL) {
    const status = `signal: ${SIGNAL_NAMES[exitCode - 128] ?? `signal ${exitCode - 128}`}`;
    return { exitCode: -1, exited: false, status, error: status };
  }
  const status = `exit status ${exitCode}`;
  return {
    exitCode,
    exited: true,
    status,
    ...(exitCode === 0 ? {} : { error: status }),
  };
}

function toBuffer(chunk: string | Uint8Array): Buffer {
  return typeof chunk === "string"
    ? Buffer.from(chunk)
    : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
}

export function shellQuote(value: string): string {
  return `'${value.replaceAll("'", `'\\''`)}'`;
}

/** Runs a helper command in the session and returns its stdout; a non-zero exit rejects. */
export async function captureText(session: SandboxSession, command: string): Promise<string> {
  const bytes = await captureBytes(session, command);
  return bytes.toString("utf8");
}

export async function captureBytes(session: SandboxSession, command: string): Promise<Buffer> {
  const stdout: Buffer[] = [];
  const stderr: Buffer[] = [];
  const result = await session.run(command, {
    timeoutMs: 60_000,
    onStdout: (chunk) => stdout.push(toBuffer(chunk)),
    onStderr: (chunk) => stderr.push(toBuffer(chunk)),
  });
  if (result.exitCode !== 0) {
    throw new HelperCommandError(
      result.exitCode,
      Buffer.concat(stderr).toString("utf8").trim() || `exit code ${result.exitCode}`,
    );
  }
  return Buffer.concat(stdout);
}

export class HelperCommandError extends Error {
  override readonly name = "HelperCommandError";
  readonly exitCode: number;
  constructor(exitCode: number, message: string) {
    super(message);
    this.exitCode = exitCode;
  }
}
