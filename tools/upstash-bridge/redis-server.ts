import type { ChildProcess } from "node:child_process";
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { constants as fsConstants } from "node:fs";
import { access, mkdtemp, readFile, rm } from "node:fs/promises";
import net from "node:net";
import os from "node:os";
import path from "node:path";

/** A redis-server process started by `startRedisServer`. */
export interface RedisServerHandle {
  readonly port: number;
  /** `redis://127.0.0.1:PORT` */
  readonly url: string;
  readonly persistence: RedisPersistence;
  /** The redis-server process (for fault tests: SIGSTOP, SIGCONT, SIGKILL from outside). */
  readonly pid: number;
  /** Sends `signal` to redis-server; with SIGKILL (or SIGTERM) resolves once it has exited. */
  signal(signal: NodeJS.Signals): Promise<void>;
  /** Starts redis-server again on the same port and directory, after it died or was killed. */
  restart(): Promise<void>;
  /** Stops the server and resolves once the process has exited. Safe to call twice. */
  stop(): Promise<void>;
}

/**
 * "aof": an append-only file fsynced every second (what a hosted Redis such as Upstash gives:
 * a crash loses at most about a second). "none": nothing survives a restart.
 */
export type RedisPersistence = "aof" | "none";

export interface StartRedisServerOptions {
  /** Loopback port to listen on. Default: a free port. */
  readonly port?: number;
  /** Default "aof". */
  readonly persistence?: RedisPersistence;
}

export const REDIS_INSTALL_COMMAND = "apt-get install -y redis-server";

const HOST = "127.0.0.1";
const READY_TIMEOUT_MS = 10_000;
const STOP_TIMEOUT_MS = 5_000;
const POLL_INTERVAL_MS = 25;
const OUTPUT_TAIL_CHARS = 4_000;
// A free port found by binding port 0 can be taken by someone else before redis binds it.
const PORT_RACE_ATTEMPTS = 3;

// redis-server runs under a small sh watchdog that holds our stdin pipe. The kernel closes that
// pipe however this process ends (crash, SIGTERM from a test runner, SIGKILL), so the watchdog
// reads EOF and stops redis: no orphan servers, without relying on exit handlers. stop() closes
// the pipe the same way. The watchdog exits with redis's exit status.
const WATCHDOG_SCRIPT = `
exec 3<&0
"$@" </dev/null &
server=$!
( read -r _ <&3; kill "$server" 2>/dev/null ) &
watcher=$!
wait "$server"
status=$?
kill "$watcher" 2>/dev/null
exit "$status"
`;

/**
 * Starts Debian's `redis-server` on a loopback port, in a temporary directory of its own, with
 * an append-only file fsynced every second unless `persistence: "none"`, and resolves once it
 * answers. Throws, naming the install command, when redis-server is not installed.
 */
export async function startRedisServer(
  options: StartRedisServerOptions = {},
): Promise<RedisServerHandle> {
  if (options.port !== undefined && !isPort(options.port)) {
    throw new RangeError(
      `startRedisServer: port must be an integer from 1 to 65535, got ${options.port}`,
    );
  }
  const binary = await findRedisServer();
  if (binary === undefined) {
    throw new Error(
      `redis-server is not installed (not found on PATH). Install it with: ${REDIS_INSTALL_COMMAND}`,
    );
  }
  const persistence = options.persistence ?? "aof";
  const dir = await mkdtemp(path.join(os.tmpdir(), "redis-server-"));
  let running: Launched | undefined;
  for (let attempt = 1; ; attempt++) {
    const port = options.port ?? (await findFreePort());
    try {
      running = await launch(binary, port, dir, persistence);
      break;
    } catch (error) {
      const raced = options.port === undefined && error instanceof PortInUseError;
      if (!raced || attempt >= PORT_RACE_ATTEMPTS) {
        await rm(dir, { recursive: true, force: true });
        throw error;
      }
    }
  }
  let current = running;
  let stopping: Promise<void> | undefined;
  return {
    port: current.port,
    url: `redis://${HOST}:${current.port}`,
    persistence,
    get pid() {
      return current.pid;
    },
    async signal(signal) {
      if (current.hasExited()) return;
      process.kill(current.pid, signal);
      if (signal === "SIGKILL" || signal === "SIGTERM") await current.exited;
    },
    async restart() {
      if (!current.hasExited()) throw new Error("redis-server is still running; kill it first");
      current = await launch(binary, current.port, dir, persistence);
    },
    stop() {
      stopping ??= (async () => {
        // A stopped (SIGSTOP) server would not see the watchdog's SIGTERM.
        if (!current.hasExited()) process.kill(current.pid, "SIGCONT");
        await current.stop();
        await rm(dir, { recursive: true, force: true });
      })();
      return stopping;
    },
  };
}

interface Launched {
  readonly port: number;
  readonly pid: number;
  readonly exited: Promise<number | null>;
  hasExited(): boolean;
  stop(): Promise<void>;
}

class PortInUseError extends Error {
  override readonly name = "PortInUseError";
}

async function launch(
  binary: string,
  port: number,
  dir: string,
  persistence: RedisPersistence,
): Promise<Launched> {
  // A per-run db file name doubles as an identity check: the readiness probe asks for it, so a
  // different server that already listens on the port is never mistaken for ours.
  const marker = `upstash-bridge-${process.pid}-${randomBytes(6).toString("hex")}.rdb`;
  const pidFile = path.join(dir, "redis.pid");
  await rm(pidFile, { force: true });
  const args = [
    binary,
    "--port",
    String(port),
    "--bind",
    HOST,
    "--protected-mode",
    "yes",
    "--daemonize",
    "no",
    "--pidfile",
    pidFile,
    "--save",
    "",
    ...(persistence === "aof"
      ? ["--appendonly", "yes", "--appendfsync", "everysec"]
      : ["--appendonly", "no"]),
    "--dir",
    dir,
    "--dbfilename",
    marker,
    "--loglevel",
    "warning",
  ];
  const child = spawn("/bin/sh", ["-c", WATCHDOG_SCRIPT, "redis-watchdog", ...args], {
    stdio: ["pipe", "pipe", "pipe"],
  });
  let output = "";
  const collect = (chunk: Buffer): void => {
    output = (output + chunk.toString("utf8")).slice(-OUTPUT_TAIL_CHARS);
  };
  child.stdout?.on("data", collect);
  child.stderr?.on("data", collect);
  const exited = new Promise<number | null>((resolve) => {
    child.once("exit", (code) => resolve(code));
  });
  let hasExited = false;
  void exited.then(() => {
    hasExited = true;
  });

  const deadline = performance.now() + READY_TIMEOUT_MS;
  for (;;) {
    if (hasExited) {
      const code = await exited;
      if (output.includes("Address already in use")) {
        throw new PortInUseError(`redis-server could not bind ${HOST}:${port}: port in use`);
      }
      throw new Error(
        `redis-server exited with code ${code} before accepting connections: ${output.trim()}`,
      );
    }
    if (await probe(port, marker)) break;
    if (performance.now() > deadline) {
      await terminate(child, exited);
      throw new Error(
        `redis-server did not answer on ${HOST}:${port} within ${READY_TIMEOUT_MS} ms: ${output.trim()}`,
      );
    }
    await sleep(POLL_INTERVAL_MS);
  }

  // A forgotten handle must not keep the process alive; when it exits the watchdog stops redis.
  unrefChild(child);
  const pid = Number((await readFile(pidFile, "utf8")).trim());
  let stopping: Promise<void> | undefined;
  return {
    port,
    pid,
    exited,
    hasExited: () => hasExited,
    stop() {
      stopping ??= terminate(child, exited);
      return stopping;
    },
  };
}

async function terminate(child: ChildProcess, exited: Promise<number | null>): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  child.stdin?.end();
  const timer = setTimeout(() => child.kill("SIGKILL"), STOP_TIMEOUT_MS);
  try {
    await exited;
  } finally {
    clearTimeout(timer);
  }
}

function unrefChild(child: ChildProcess): void {
  child.unref();
  for (const stream of [child.stdin, child.stdout, child.stderr]) {
    if (stream instanceof net.Socket) stream.unref();
  }
}

/** True when the server on `port` is ours (its dbfilename is `marker`) and accepts commands. */
function probe(port: number, marker: string): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host: HOST, port });
    let reply = "";
    const finish = (ours: boolean): void => {
      socket.destroy();
      resolve(ours);
    };
    socket.setTimeout(1_000, () => finish(false));
    socket.once("error", () => finish(false));
    socket.once("close", () => finish(false));
    socket.once("connect", () => socket.write("CONFIG GET dbfilename\r\n"));
    socket.on("data", (chunk: Buffer) => {
      reply += chunk.toString("latin1");
      if (reply.includes(marker)) finish(true);
      // An error (-LOADING while starting) or a complete reply that names another file.
      else if (reply.startsWith("-") || reply.split("\r\n").length > 5) finish(false);
    });
  });
}

async function findRedisServer(): Promise<string | undefined> {
  const pathDirs = (process.env.PATH ?? "").split(path.delimiter).filter((dir) => dir !== "");
  // Debian installs to /usr/bin; a PATH trimmed by a test runner may lack it.
  const dirs = [...pathDirs, "/usr/bin", "/usr/sbin", "/usr/local/bin"];
  for (const dir of dirs) {
    const candidate = path.join(dir, "redis-server");
    try {
      await access(candidate, fsConstants.X_OK);
      return candidate;
    } catch {
      // not in this directory
    }
  }
  return undefined;
}

async function findFreePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, HOST, () => resolve());
  });
  const address = server.address();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  if (address === null || typeof address === "string") {
    throw new Error("could not determine a free loopback port");
  }
  return address.port;
}

function isPort(value: number): boolean {
  return Number.isInteger(value) && value >= 1 && value <= 65_535;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
