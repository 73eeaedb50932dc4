// The whole system on this machine with embedded defaults: redis-server behind the Upstash
// bridge, the Worker with its Durable Objects, Queue and R2 in local workerd, and the runner
// service as its own process, with the local sandbox or, with `sandbox: "e2b-local"`, the E2B
// adapter against tools/e2b-local. A development key pair stands in for Clerk's.
// Used by `npm start` and by the end-to-end tests.
import type { ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { CA_TRUST_VARIABLES } from "../../worker-build-runner/sandbox/bwrap-jail.ts";
import { localSandbox } from "../../worker-build-runner/sandbox/local.ts";
import { type E2BLocalServer, startE2BLocalServer } from "../e2b-local/server.ts";
import { startUpstashBridge, type UpstashBridge } from "../upstash-bridge/bridge.ts";
import {
  type RedisPersistence,
  type RedisServerHandle,
  startRedisServer,
} from "../upstash-bridge/redis-server.ts";
import { createDevSigner } from "./dev-signer.ts";
import { commandOf, descendantPids, listenerOf } from "./proc.ts";
import { spawnNodeReady } from "./spawn-ready.ts";
import { startTcpForwarder, type TcpForwarder } from "./tcp-forward.ts";
import { startWorkerd, type WorkerdHandle } from "./workerd.ts";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));

export interface StackOptions {
  readonly bridgePort?: number;
  readonly runnerPort?: number;
  /** The runner's lease; short in tests so a killed runner is noticed quickly. */
  readonly runnerLeaseMs?: number;
  /** Extra Worker vars (e.g. a small heartbeat for tests). */
  readonly workerVars?: Readonly<Record<string, string>>;
  /**
   * The Worker keeps its Durable Objects, R2 and Queue on disk and sits behind a forwarder with
   * a fixed address, so `restartWorker()` can kill workerd and start it again, as a crash and
   * a redeploy would, with the runner and viewers calling the same URL.
   */
  readonly restartableWorker?: boolean;
  /** Extra runner variables (e.g. a small live copy, to test past its byte cap). */
  readonly runnerVars?: Readonly<Record<string, string>>;
  /** Where the runner's output goes; default: this process's stderr. */
  readonly runnerOutput?: "inherit" | "ignore";
  /** Where builds run: the local sandbox (default), or E2B's adapter against tools/e2b-local. */
  readonly sandbox?: "local" | "e2b-local";
  /** redis-server's persistence; default "aof" (fsync every second), as Upstash persists. */
  readonly redisPersistence?: RedisPersistence;
  /**
   * The Upstash URL the runner is given, from the bridge's: fault tests put a TCP proxy
   * between the runner and the bridge here. Default: the bridge itself.
   */
  readonly runnerUpstashUrl?: (bridgeUrl: string) => Promise<string>;
  /**
   * The Worker URL the runner is given, from the Worker's: fault tests put a TCP proxy between
   * the runner and the Worker here (its pushes, over the push socket or by POST). Default: the
   * Worker itself.
   */
  readonly runnerWorkerUrl?: (workerUrl: string) => Promise<string>;
}

export interface RunnerProcess {
  readonly url: string;
  readonly child: ChildProcess;
  stop(signal?: NodeJS.Signals): Promise<void>;
}

export interface Stack {
  readonly workerUrl: string;
  readonly bridge: UpstashBridge;
  readonly redisServer: RedisServerHandle;
  readonly runnerToken: string;
  readonly runner: RunnerProcess;
  /** The E2B-compatible server builds run through, with `sandbox: "e2b-local"`. */
  readonly e2bLocal: E2BLocalServer | undefined;
  /** A session token as Clerk would issue it, signed with the development key. */
  signToken(userId: string, ttlSeconds?: number): string;
  /** Starts another runner process (after the first was killed). */
  restartRunner(): Promise<RunnerProcess>;
  /**
   * With `restartableWorker`: SIGKILLs the Worker's workerd process (from outside, as a crash),
   * leaves it down `downMs`, then starts it again on the state it kept.
   */
  restartWorker(downMs?: number): Promise<void>;
  stop(): Promise<void>;
}

/** The development sign-in (enabled by DEV_SIGN_IN=1): sets the `__session` cookie, then opens `next`. */
export function devSignInUrl(workerUrl: string, token: string, next: string): string {
  const url = new URL("/dev/sign-in", workerUrl);
  url.searchParams.set("token", token);
  url.searchParams.set("next", next);
  return url.href;
}

function caTrust(): Record<string, string> {
  const env: Record<string, string> = {};
  for (const name of CA_TRUST_VARIABLES) {
    const value = process.env[name];
    if (value !== undefined) env[name] = value;
  }
  return env;
}

/** Whether 127.0.0.1:`port` can be listened on now (0: any port; resolves the port got, or null). */
function listenable(port: number): Promise<number | null> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once("error", () => resolve(null));
    server.listen(port, "127.0.0.1", () => {
      const address = server.address();
      const got = typeof address === "object" && address !== null ? address.port : null;
      server.close(() => resolve(got));
    });
  });
}

/** The kernel's range for ports it picks itself (outgoing connections, listen on port 0). */
function ephemeralRange(): { low: number; high: number } {
  try {
    const [low, high] = readFileSync("/proc/sys/net/ipv4/ip_local_port_range", "utf8")
      .trim()
      .split(/\s+/)
      .map(Number);
    if (Number.isInteger(low) && Number.isInteger(high)) return { low: low ?? 0, high: high ?? 0 };
  } catch {
    // not Linux: the IANA range
  }
  return { low: 49152, high: 65535 };
}

/**
 * A port that is free now and stays so until it is listened on, seconds later (the runner's:
 * the Worker must know it before the runner starts). Below the kernel's ephemeral range, so no
 * outgoing connection takes it meanwhile: one picked by listening on port 0 lay in that range,
 * and with the test projects opening thousands of connections at once, the runner's listen on
 * it failed in CI once ("the runner exited with code 1 before it was ready"). Only another
 * deliberate listener could take this one.
 */
export async function freePort(): Promise<number> {
  const { low } = ephemeralRange();
  const floor = 10_000;
  if (low - floor >= 1_000) {
    for (let attempt = 0; attempt < 50; attempt++) {
      const port = floor + Math.floor(Math.random() * (low - floor));
      if ((await listenable(port)) !== null) return port;
    }
  }
  const port = await listenable(0);
  if (port === null) throw new Error("no free port on 127.0.0.1");
  return port;
}

async function startRunner(
  env: Record<string, string>,
  output: "inherit" | "ignore",
): Promise<RunnerProcess> {
  const runner = await spawnNodeReady({
    args: ["worker-build-runner/main.ts"],
    cwd: ROOT,
    // The host's CA-trust variables too: builds behind a TLS-inspecting proxy need them.
    env: { PATH: process.env.PATH ?? "", ...caTrust(), ...env },
    stderr: output,
    echo: output === "inherit",
    ready: /listening on (http:\/\/\S+?:\d+)/,
    what: "the runner",
  });
  return {
    url: (runner.match[1] ?? "").replace("0.0.0.0", "127.0.0.1"),
    child: runner.child,
    stop: runner.stop,
  };
}

export async function startStack(options: StackOptions = {}): Promise<Stack> {
  const cleanups: (() => Promise<void>)[] = [];
  const stop = async (): Promise<void> => {
    for (const cleanup of cleanups.reverse()) await cleanup().catch(() => undefined);
    cleanups.length = 0;
  };
  try {
    const redisServer = await startRedisServer(
      options.redisPersistence === undefined ? {} : { persistence: options.redisPersistence },
    );
    cleanups.push(() => redisServer.stop());
    const upstashToken = randomBytes(18).toString("base64url");
    const bridge = await startUpstashBridge({
      redisUrl: redisServer.url,
      token: upstashToken,
      ...(options.bridgePort === undefined ? {} : { port: options.bridgePort }),
    });
    cleanups.push(() => bridge.close());

    let e2bLocal: E2BLocalServer | undefined;
    if (options.sandbox === "e2b-local") {
      const server = await startE2BLocalServer({
        sandbox: localSandbox(),
        apiKey: `e2b_local_${randomBytes(12).toString("hex")}`,
      });
      cleanups.push(() => server.close());
      e2bLocal = server;
    }
    const sandboxEnv: Record<string, string> =
      e2bLocal === undefined
        ? { SANDBOX: "local" }
        : {
            SANDBOX: "e2b",
            E2B_API_KEY: e2bLocal.apiKey,
            E2B_API_URL: e2bLocal.url,
            E2B_SANDBOX_URL: e2bLocal.url,
          };

    const signer = createDevSigner();
    const runnerToken = randomBytes(24).toString("base64url");
    const jobSecretsKey = randomBytes(32).toString("base64");
    const runnerUpstashUrl = (await options.runnerUpstashUrl?.(bridge.url)) ?? bridge.url;
    const runnerEnv = (workerUrl: string): Record<string, string> => ({
      UPSTASH_REDIS_REST_URL: runnerUpstashUrl,
      UPSTASH_REDIS_REST_TOKEN: upstashToken,
      RUNNER_TOKEN: runnerToken,
      JOB_SECRETS_KEY: jobSecretsKey,
      WORKER_URL: workerUrl,
      HOST: "127.0.0.1",
      ...sandboxEnv,
      RUNNER_LEASE_MS: String(options.runnerLeaseMs ?? 30_000),
      ...options.runnerVars,
    });
    // The Worker must know the runner's URL and the runner the Worker's: reserve the runner's
    // port, start the Worker with it, then the runner.
    const port = options.runnerPort ?? (await freePort());
    const persistTo = options.restartableWorker
      ? mkdtempSync(path.join(tmpdir(), "build-log-stream-workerd-"))
      : undefined;
    if (persistTo !== undefined)
      cleanups.push(async () => rmSync(persistTo, { recursive: true, force: true }));
    const workerBindings = {
      UPSTASH_REDIS_REST_URL: bridge.url,
      UPSTASH_REDIS_REST_TOKEN: upstashToken,
      RUNNER_TOKEN: runnerToken,
      JOB_SECRETS_KEY: jobSecretsKey,
      RUNNER_URL: `http://127.0.0.1:${port}`,
      CLERK_JWT_KEY: signer.jwtKey,
      CLERK_SECRET_KEY: "",
      CLERK_API_URL: "",
      CLERK_AUTHORIZED_PARTIES: "",
      STREAM_TICKET_SECRET: randomBytes(32).toString("base64url"),
      // GET /dev/sign-in: a browser gets the __session cookie from a development token.
      DEV_SIGN_IN: "1",
      ...options.workerVars,
    };
    const launchWorkerd = () =>
      startWorkerd({
        configPath: `${ROOT}wrangler.toml`,
        bindings: workerBindings,
        ...(persistTo === undefined ? {} : { persistTo }),
      });
    let workerd: WorkerdHandle = await launchWorkerd();
    cleanups.push(() => workerd.dispose());
    let front: TcpForwarder | undefined;
    if (options.restartableWorker) {
      const forwarder = await startTcpForwarder(workerd.url);
      front = forwarder;
      cleanups.push(() => forwarder.close());
    }
    const workerUrl = front?.url ?? workerd.url;
    const runnerWorkerUrl = (await options.runnerWorkerUrl?.(workerUrl)) ?? workerUrl;
    const runnerEnvFinal = { ...runnerEnv(runnerWorkerUrl), PORT: String(port) };
    const output = options.runnerOutput ?? "inherit";
    let current = await startRunner(runnerEnvFinal, output);
    cleanups.push(() => current.stop());

    const stack: Stack = {
      workerUrl,
      bridge,
      redisServer,
      runnerToken,
      get runner() {
        return current;
      },
      e2bLocal,
      signToken: (userId, ttlSeconds) => signer.sign(userId, ttlSeconds),
      async restartRunner() {
        await current.stop("SIGKILL");
        current = await startRunner(runnerEnvFinal, output);
        return current;
      },
      async restartWorker(downMs = 0) {
        if (front === undefined) throw new Error("startStack({ restartableWorker: true }) first");
        const pid = listenerOf(
          descendantPids(process.pid).filter((candidate) => commandOf(candidate) === "workerd"),
          Number(new URL(workerd.url).port),
        );
        if (pid === undefined) throw new Error(`no workerd process listens at ${workerd.url}`);
        process.kill(pid, "SIGKILL");
        // wrangler's own workerd (its proxy) and its bookkeeping go too; a dead one may not answer.
        await Promise.race([
          workerd.dispose().catch(() => undefined),
          new Promise((resolve) => setTimeout(resolve, 10_000)),
        ]);
        await new Promise((resolve) => setTimeout(resolve, downMs));
        workerd = await launchWorkerd();
        front.retarget(workerd.url);
      },
      stop,
    };
    return stack;
  } catch (error) {
    await stop();
    throw error;
  }
}
