import { randomUUID } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdtemp, realpath, rm } from "node:fs/promises";
import type { IncomingMessage, Server } from "node:http";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from "vitest";
import { startE2BLocalServer } from "../../tools/e2b-local/server.ts";
import { DEFAULT_BUILD_LIMITS } from "../../worker-build-runner/sandbox/bwrap-jail.ts";
import { e2bSandbox } from "../../worker-build-runner/sandbox/e2b.ts";
import { localSandbox } from "../../worker-build-runner/sandbox/local.ts";
import type {
  CommandResult,
  RunOptions,
  Sandbox,
  SandboxSession,
} from "../../worker-build-runner/sandbox/types.ts";
import { SandboxError } from "../../worker-build-runner/sandbox/types.ts";
import { hostProcesses } from "../security/host.ts";

// One contract for every adapter. E2B's needs its cloud, so it runs only where E2B_API_KEY is
// set; the e2b tests at the end need no cloud. The local adapter is the isolated one
// (bubblewrap); what isolation keeps out is shown by test/security/.

const E2B_LOCAL_KEY = "e2b_local_contract_key";

const RUNNER_SECRETS = {
  RUNNER_TOKEN: "fake-runner-token-7c1e0b",
  UPSTASH_REDIS_REST_TOKEN: "fake-upstash-token-2d94aa",
};

interface Adapter {
  readonly name: string;
  readonly available: boolean;
  readonly make: () => Sandbox | Promise<Sandbox>;
}

// What the e2b-local adapter started, stopped after the suite.
const cleanups: (() => Promise<void>)[] = [];

const adapters: readonly Adapter[] = [
  { name: "local", available: true, make: () => localSandbox() },
  { name: "e2b", available: Boolean(process.env.E2B_API_KEY), make: () => e2bSandbox() },
  {
    // The E2B adapter and the unchanged SDK against tools/e2b-local in front of the local sandbox.
    name: "e2b through e2b-local",
    available: true,
    make: async () => {
      const server = await startE2BLocalServer({ sandbox: localSandbox(), apiKey: E2B_LOCAL_KEY });
      cleanups.push(() => server.close());
      return e2bSandbox({ apiKey: E2B_LOCAL_KEY, apiUrl: server.url, sandboxUrl: server.url });
    },
  },
];

/** Output as the callbacks saw it, decoded the way the log pipeline does. */
function collector(): {
  readonly chunks: (string | Uint8Array)[];
  readonly push: (chunk: string | Uint8Array) => void;
  text(): string;
} {
  const chunks: (string | Uint8Array)[] = [];
  const decoder = new TextDecoder();
  let text = "";
  return {
    chunks,
    push(chunk) {
      chunks.push(chunk);
      text += typeof chunk === "string" ? chunk : decoder.decode(chunk, { stream: true });
    },
    text: () => text,
  };
}

async function capture(
  session: SandboxSession,
  command: string,
  options: Omit<RunOptions, "onStdout" | "onStderr"> = {},
): Promise<{ result: CommandResult; stdout: string; stderr: string }> {
  const stdout = collector();
  const stderr = collector();
  const result = await session.run(command, {
    ...options,
    onStdout: stdout.push,
    onStderr: stderr.push,
  });
  return { result, stdout: stdout.text(), stderr: stderr.text() };
}

const ignore = (): void => undefined;
const quiet = { onStdout: ignore, onStderr: ignore };

/** Resolves once the collected output contains `text`. */
function waitForOutput(text: string): {
  readonly onStdout: (chunk: string | Uint8Array) => void;
  readonly seen: Promise<void>;
} {
  const output = collector();
  let resolveSeen: () => void = ignore;
  const seen = new Promise<void>((resolve) => (resolveSeen = resolve));
  return {
    onStdout: (chunk) => {
      output.push(chunk);
      if (output.text().includes(text)) resolveSeen();
    },
    seen,
  };
}

/** A shell snippet printing whether the process whose pid is in `pidFile` still runs (a zombie does not). */
function processState(pidFile: string): string {
  return `state=$(cut -d' ' -f3 "/proc/$(cat ${pidFile})/stat" 2>/dev/null); case "$state" in ""|Z|X) echo gone;; *) echo running;; esac`;
}

async function rejection(promise: Promise<unknown>): Promise<unknown> {
  return promise.then(
    () => expect.unreachable("expected a rejection"),
    (error: unknown) => error,
  );
}

describe.each(adapters)("$name sandbox", ({ available, make }) => {
  describe.skipIf(!available)("contract", () => {
    let sandbox: Sandbox;
    let session: SandboxSession;

    beforeAll(async () => {
      // The runner's own secrets are in its environment before the adapter is even made.
      for (const [name, value] of Object.entries(RUNNER_SECRETS)) vi.stubEnv(name, value);
      sandbox = await make();
    });
    afterAll(async () => {
      vi.unstubAllEnvs();
      await Promise.all(cleanups.splice(0).map((cleanup) => cleanup()));
    });
    beforeEach(async () => {
      session = await sandbox.create({
        env: { SESSION_VAR: "from the session", SHARED: "session" },
      });
    });
    afterEach(async () => {
      await session.kill();
    });

    it("passes stdout and stderr to their own callbacks, byte for byte", async () => {
      // A line and a UTF-8 character split across writes, with pauses so they leave in pieces.
      const { result, stdout, stderr } = await capture(
        session,
        `printf 'out 1\\n'; printf 'err 1\\n' >&2; printf 'h\\303\\251llo \\360\\237'; sleep 0.2; ` +
          `printf '\\232\\200 par'; sleep 0.2; printf 'tial\\n'; printf 'err 2\\n' >&2`,
      );
      expect(result).toEqual({ exitCode: 0, timedOut: false });
      expect(stdout).toBe("out 1\nhéllo 🚀 partial\n");
      expect(stderr).toBe("err 1\nerr 2\n");
    });

    it("delivers output while the command is still running", async () => {
      // The command waits for a file the test writes only after seeing its first line, so an
      // adapter that held output back until the end would time out here.
      const output = collector();
      let released = false;
      const result = await session.run(
        `echo waiting; while [ ! -f release ]; do sleep 0.05; done; echo released`,
        {
          timeoutMs: 20_000,
          onStdout: (chunk) => {
            output.push(chunk);
            if (!released && output.text().includes("waiting")) {
              released = true;
              session.writeFile("release", "").catch(ignore);
            }
          },
          onStderr: ignore,
        },
      );
      expect(result).toEqual({ exitCode: 0, timedOut: false });
      expect(output.text()).toBe("waiting\nreleased\n");
    });

    it.each([0, 1, 42])("returns exit code %i as a result, not an error", async (code) => {
      const { result, stderr } = await capture(session, `echo failing >&2; exit ${code}`);
      expect(result).toEqual({ exitCode: code, timedOut: false });
      expect(stderr).toBe("failing\n");
    });

    it("gives a command the session's env and its own, never the runner's", async () => {
      const { result, stdout } = await capture(session, "env", {
        env: { COMMAND_VAR: "from the command", SHARED: "command" },
      });
      expect(result.exitCode).toBe(0);
      const vars = new Map<string, string>();
      for (const line of stdout.split("\n")) {
        const match = /^(\w+)=(.*)$/.exec(line);
        if (match?.[1] !== undefined) vars.set(match[1], match[2] ?? "");
      }
      expect(Object.fromEntries(vars)).toMatchObject({
        SESSION_VAR: "from the session",
        COMMAND_VAR: "from the command",
        SHARED: "command",
        CI: "true",
      });
      expect(vars.has("PATH")).toBe(true);
      for (const [name, value] of Object.entries(RUNNER_SECRETS)) {
        expect(process.env[name]).toBe(value); // the runner does have them
        expect(vars.has(name)).toBe(false);
        expect(stdout).not.toContain(value);
      }
    });

    it("runs in the workdir, or in a cwd relative to it or absolute inside it", async () => {
      await session.writeFile("sub/dir/marker.txt", "marker\n");
      expect((await capture(session, "pwd")).stdout).toBe(`${session.workdir}\n`);
      expect((await capture(session, "pwd; cat marker.txt", { cwd: "sub/dir" })).stdout).toBe(
        `${session.workdir}/sub/dir\nmarker\n`,
      );
      expect((await capture(session, "pwd", { cwd: `${session.workdir}/sub` })).stdout).toBe(
        `${session.workdir}/sub\n`,
      );
    });

    it.each(["..", "/", "sub/../.."])("refuses the cwd %j outside the workdir", async (cwd) => {
      expect(await rejection(session.run("pwd", { ...quiet, cwd }))).toMatchObject({
        name: "SandboxError",
        code: "bad_path",
      });
    });

    it("reports a cwd that does not exist as command_start_failed", async () => {
      expect(await rejection(session.run("pwd", { ...quiet, cwd: "missing" }))).toMatchObject({
        code: "command_start_failed",
      });
    });

    it("writes text and bytes, creating parent directories and replacing what was there", async () => {
      await session.writeFile("a/b/c.txt", "first\n");
      await session.writeFile("a/b/c.txt", "héllo 🚀\n");
      expect((await capture(session, "cat a/b/c.txt")).stdout).toBe("héllo 🚀\n");

      // A view into a larger buffer: only the view's bytes are written.
      const backing = new Uint8Array(300).fill(0xee);
      const allBytes = backing.subarray(10, 266);
      for (let index = 0; index < allBytes.length; index++) allBytes[index] = index;
      await session.writeFile("bin/all-bytes", allBytes);
      const { stdout } = await capture(session, "od -An -tx1 -v bin/all-bytes");
      expect(stdout.replace(/\s+/g, "")).toBe(
        Array.from(allBytes, (byte) => byte.toString(16).padStart(2, "0")).join(""),
      );

      await session.writeFile(`${session.workdir}/absolute.txt`, "inside");
      expect((await capture(session, "cat absolute.txt")).stdout).toBe("inside");
    });

    it.each(["../outside.txt", "a/../../outside.txt", "/etc/outside.txt", "/", "", "."])(
      "refuses to write %j, which is not a file inside the workdir",
      async (path) => {
        expect(await rejection(session.writeFile(path, "x"))).toMatchObject({
          name: "SandboxError",
          code: "bad_path",
        });
      },
    );

    it("kills a command that runs past its timeout, and everything it started", async () => {
      const { result, stdout } = await capture(
        session,
        `sh -c 'sleep 30 & echo $! > child.pid; echo started; sleep 30'`,
        { timeoutMs: 2_000 },
      );
      expect(result).toEqual({ exitCode: 124, timedOut: true });
      expect(stdout).toBe("started\n");
      expect((await capture(session, processState("child.pid"))).stdout).toBe("gone\n");
    });

    it("runs a background process alongside later commands until it is killed", async () => {
      const ready = waitForOutput("ready");
      const server = await session.start("echo $$ > server.pid; echo ready; exec sleep 300", {
        onStdout: ready.onStdout,
        onStderr: ignore,
      });
      await ready.seen;
      expect((await capture(session, processState("server.pid"))).stdout).toBe("running\n");

      await server.kill();
      const result = await server.wait();
      expect(result.timedOut).toBe(false);
      expect(result.exitCode).toBeGreaterThan(128);
      expect((await capture(session, processState("server.pid"))).stdout).toBe("gone\n");
      await server.kill(); // again: nothing left to do
    });

    it("reports how a background process ended by itself", async () => {
      const exited = await session.start("echo bye; exit 3", quiet);
      expect(await exited.wait()).toEqual({ exitCode: 3, timedOut: false });
      const timed = await session.start("sleep 30", { ...quiet, timeoutMs: 500 });
      expect(await timed.wait()).toEqual({ exitCode: 124, timedOut: true });
    });

    it("passes a large output through whole and in order", async () => {
      const lines = 800_000; // about 5.9 MB
      const { result, stdout, stderr } = await capture(session, `seq 1 ${lines}; echo end >&2`);
      expect(result).toEqual({ exitCode: 0, timedOut: false });
      const expected = Array.from({ length: lines }, (_, index) => `${index + 1}\n`).join("");
      expect(stdout.length).toBe(expected.length);
      expect(stdout === expected).toBe(true);
      expect(stderr).toBe("end\n");
    });

    it("rejects with output_callback_failed, and kills the command, when a callback throws", async () => {
      const failure = await rejection(
        session.run("echo hello; sleep 60", {
          onStdout: () => {
            throw new Error("log pipeline down");
          },
          onStderr: ignore,
        }),
      );
      expect(failure).toMatchObject({
        code: "output_callback_failed",
        cause: { message: "log pipeline down" },
      });
    });

    it("refuses unusable options with bad_options", async () => {
      expect(
        await rejection(session.run("true", { ...quiet, env: { "NOT=A NAME": "x" } })),
      ).toMatchObject({ code: "bad_options" });
      expect(await rejection(session.run("true", { ...quiet, timeoutMs: 0 }))).toMatchObject({
        code: "bad_options",
      });
      expect(await rejection(sandbox.create({ timeoutMs: -1 }))).toMatchObject({
        code: "bad_options",
      });
    });

    it("kill() ends running and background commands, is idempotent, and closes the session", async () => {
      const server = await session.start("exec sleep 300", quiet);
      const started = waitForOutput("started");
      const running = session.run("echo started; sleep 60", {
        onStdout: started.onStdout,
        onStderr: ignore,
      });
      await started.seen;

      await Promise.all([session.kill(), session.kill()]);
      await session.kill();

      for (const result of [await running, await server.wait()]) {
        expect(result.timedOut).toBe(false);
        expect(result.exitCode).toBeGreaterThan(128);
      }
      expect(await rejection(session.run("true", quiet))).toMatchObject({ code: "sandbox_closed" });
      expect(await rejection(session.start("true", quiet))).toMatchObject({
        code: "sandbox_closed",
      });
      expect(await rejection(session.writeFile("late.txt", "x"))).toMatchObject({
        code: "sandbox_closed",
      });
    });
  });
});

describe("localSandbox", () => {
  let rootDir: string;
  beforeAll(async () => {
    rootDir = await mkdtemp(join(tmpdir(), "sandbox-contract-"));
  });
  afterAll(async () => {
    await rm(rootDir, { recursive: true, force: true });
  });

  it("checks its options when it is made", () => {
    expect(
      caught(() => localSandbox({ isolation: "none", rootDir: join(rootDir, "missing") })),
    ).toMatchObject({ code: "bad_config" });
    expect(caught(() => localSandbox({ killGraceMs: -1 }))).toMatchObject({ code: "bad_config" });
    expect(
      caught(() => localSandbox({ limits: { ...DEFAULT_BUILD_LIMITS, processes: 0 } })),
    ).toMatchObject({ code: "bad_config", message: expect.stringContaining("processes") });
    expect(localSandbox().name).toBe("local");
    expect(localSandbox({ isolation: "none", rootDir }).name).toBe("local-unsafe");
  });

  it("refuses the isolated sandbox without bubblewrap, naming the Debian package", () => {
    vi.stubEnv("PATH", rootDir);
    try {
      const error = caught(() => localSandbox());
      expect(error).toMatchObject({ code: "bad_config" });
      expect((error as Error).message).toMatch(/bwrap.*not found.*apt-get install -y bubblewrap/);
      expect((error as Error).message).toContain("SANDBOX=local-unsafe");
    } finally {
      vi.unstubAllEnvs();
    }
  });

  it("gives each session a workdir of its own, in a tmpfs no other session nor the host sees", async () => {
    const sandbox = localSandbox();
    const [first, second] = await Promise.all([sandbox.create(), sandbox.create()]);
    try {
      expect(first.workdir).toBe("/home/user/app");
      expect(first.id).not.toBe(second.id);
      await first.writeFile("node_modules/.cache/x", "first's");
      expect((await capture(first, "cat node_modules/.cache/x")).stdout).toBe("first's");
      expect((await capture(second, "ls -A")).stdout).toBe("");
      expect(existsSync("/home/user/app/node_modules/.cache/x")).toBe(false);
      expect((await capture(first, "df -P . | tail -1")).stdout).toMatch(/^tmpfs\s/);
    } finally {
      await first.kill();
      await second.kill();
    }
  });

  it("sets HOME and PATH of its own and passes output on as bytes", async () => {
    const session = await localSandbox().create();
    try {
      const stdout = collector();
      await session.run('echo "$HOME"; echo "$PATH"; node -p process.version', {
        onStdout: stdout.push,
        onStderr: ignore,
      });
      expect(stdout.chunks.every((chunk) => chunk instanceof Uint8Array)).toBe(true);
      // The runner's own Node is in the sandbox, whatever node the host has.
      expect(stdout.text()).toBe(
        `/home/user/app\n/opt/node/bin:/usr/local/bin:/usr/bin:/bin\n${process.version}\n`,
      );
    } finally {
      await session.kill();
    }
  });

  it("local-unsafe: a fresh directory under rootDir, HOME there, the runner's PATH, removed on kill()", async () => {
    const sandbox = localSandbox({ isolation: "none", rootDir });
    const [first, second] = await Promise.all([sandbox.create(), sandbox.create()]);
    expect(dirname(first.workdir)).toBe(await realpath(rootDir));
    expect(first.workdir).not.toBe(second.workdir);
    await first.writeFile("node_modules/.cache/x", "x");
    const stdout = collector();
    await first.run('echo "$HOME"; echo "$PATH"', { onStdout: stdout.push, onStderr: ignore });
    expect(stdout.text()).toBe(`${first.workdir}\n${process.env.PATH ?? ""}\n`);
    await first.kill();
    expect(existsSync(first.workdir)).toBe(false);
    expect(existsSync(second.workdir)).toBe(true);
    await first.kill();
    await second.kill();
    expect(existsSync(second.workdir)).toBe(false);
  });

  it.each([
    ["isolated", () => localSandbox()],
    ["local-unsafe", () => localSandbox({ isolation: "none", rootDir })],
  ])("%s: refuses to write through a symlink that leaves the workdir", async (_, make) => {
    const session = await make().create();
    try {
      await session.run("ln -s .. up && mkdir real && ln -s real inside", quiet);
      expect(await rejection(session.writeFile("up/escaped.txt", "x"))).toMatchObject({
        code: "bad_path",
      });
      expect((await capture(session, "ls ../escaped.txt 2>/dev/null; true")).stdout).toBe("");
      await session.writeFile("inside/fine.txt", "fine");
      expect((await capture(session, "cat real/fine.txt")).stdout).toBe("fine");
    } finally {
      await session.kill();
    }
  });

  it("SIGKILLs a process group that ignores SIGTERM once the grace period is over", async () => {
    const session = await localSandbox({ killGraceMs: 200 }).create();
    try {
      const started = waitForOutput("trapped");
      const running = session.run("trap '' TERM; echo trapped; sleep 30", {
        timeoutMs: 20_000,
        onStdout: started.onStdout,
        onStderr: ignore,
      });
      await started.seen;
      await session.kill();
      expect(await running).toEqual({ exitCode: 137, timedOut: false });
    } finally {
      await session.kill();
    }
  });

  it("returns when the shell exits even if it left a process holding the output open; kill() ends that too", async () => {
    const session = await localSandbox().create();
    const marker = `left-${randomUUID()}`;
    try {
      // The marker names the left process on the host, where its pid is not the one inside.
      const { result, stdout } = await capture(
        session,
        `sh -c 'sleep 60; : ${marker}' & echo done`,
      );
      expect(result).toEqual({ exitCode: 0, timedOut: false });
      expect(stdout).toBe("done\n");
      expect(hostProcesses(marker)).toHaveLength(1);
      await session.kill();
      // kill() resolves once the build's PID namespace is gone, its zombies reaped with it.
      expect(hostProcesses(marker)).toEqual([]);
    } finally {
      await session.kill();
    }
  });

  it("serves a background dev server to the build's later commands until it is killed", async () => {
    const session = await localSandbox().create();
    try {
      await session.writeFile(
        "server.mjs",
        `import { createServer } from "node:http";
const server = createServer((request, response) => response.end("hello from the sandbox"));
server.listen(0, "127.0.0.1", () => console.log("listening on " + server.address().port));`,
      );
      const output = collector();
      const listening = waitForOutput("\n");
      const server = await session.start("node server.mjs", {
        onStdout: (chunk) => {
          output.push(chunk);
          listening.onStdout(chunk);
        },
        onStderr: ignore,
      });
      await listening.seen;
      const port = /listening on (\d+)/.exec(output.text())?.[1];
      expect(port).toBeDefined();
      const get = `node -e 'fetch("http://127.0.0.1:${port ?? ""}/").then(r => r.text()).then(console.log, e => console.log(e.cause?.code))'`;
      expect((await capture(session, get)).stdout).toBe("hello from the sandbox\n");
      // The runner's loopback is not the build's: the port is not open here.
      expect(await rejection(fetch(`http://127.0.0.1:${port ?? ""}/`))).toBeInstanceOf(TypeError);
      await server.kill();
      expect((await server.wait()).exitCode).toBe(128 + 15);
      expect((await capture(session, get)).stdout).toBe("ECONNREFUSED\n");
    } finally {
      await session.kill();
    }
  });

  it("ends the session by itself when it outlives its timeout", async () => {
    const session = await localSandbox().create({ timeoutMs: 300 });
    const server = await session.start("exec sleep 300", quiet);
    expect((await server.wait()).exitCode).toBeGreaterThan(128);
    await vi.waitFor(
      async () =>
        expect(await rejection(session.run("true", quiet))).toMatchObject({
          code: "sandbox_closed",
        }),
      { timeout: 10_000 },
    );
  });
});

describe("e2bSandbox without the cloud", () => {
  afterEach(() => {
    vi.unstubAllEnvs();
  });

  it("refuses to be made without an API key, naming E2B_API_KEY", () => {
    vi.stubEnv("E2B_API_KEY", undefined);
    const error = caught(() => e2bSandbox());
    expect(error).toBeInstanceOf(SandboxError);
    expect(error).toMatchObject({
      code: "bad_config",
      message: expect.stringContaining("E2B_API_KEY"),
    });
    expect(caught(() => e2bSandbox({ apiKey: "" }))).toMatchObject({ code: "bad_config" });
  });

  it("takes the key from the option or from E2B_API_KEY, without calling the cloud", () => {
    vi.stubEnv("E2B_API_KEY", undefined);
    expect(e2bSandbox({ apiKey: "e2b_test" }).name).toBe("e2b");
    vi.stubEnv("E2B_API_KEY", "e2b_test");
    expect(e2bSandbox().name).toBe("e2b");
    expect(caught(() => e2bSandbox({ template: "" }))).toMatchObject({ code: "bad_config" });
  });

  it("surfaces an unreachable API as sandbox_create_failed", async () => {
    const port = await closedPort();
    vi.stubEnv("E2B_API_URL", `http://127.0.0.1:${port}`);
    const error = await rejection(e2bSandbox({ apiKey: "e2b_test" }).create());
    expect(error).toBeInstanceOf(SandboxError);
    expect(error).toMatchObject({ code: "sandbox_create_failed" });
  });

  it("asks the API for the template, lifetime and env it was given (not the runner's), and surfaces a refusal", async () => {
    vi.stubEnv("RUNNER_TOKEN", RUNNER_SECRETS.RUNNER_TOKEN);
    const api = await fakeApi(() => ({
      status: 401,
      body: { code: 401, message: "Invalid API key" },
    }));
    try {
      vi.stubEnv("E2B_API_URL", api.url);
      const sandbox = e2bSandbox({ apiKey: "e2b_test_key", template: "node-builder" });
      const error = await rejection(
        sandbox.create({ env: { SESSION_VAR: "x" }, timeoutMs: 120_000 }),
      );
      expect(error).toMatchObject({
        code: "sandbox_create_failed",
        message: expect.stringContaining("Invalid API key"),
      });
      expect(api.requests).toHaveLength(1);
      expect(api.requests[0]).toMatchObject({
        method: "POST",
        url: "/v2/sandboxes",
        apiKey: "e2b_test_key",
        body: {
          templateID: "node-builder",
          timeout: 120,
          envVars: { CI: "true", SESSION_VAR: "x" },
        },
      });
      expect(JSON.stringify(api.requests[0]?.body)).not.toContain(RUNNER_SECRETS.RUNNER_TOKEN);
    } finally {
      await api.close();
    }
  });
});

function caught(action: () => unknown): unknown {
  try {
    action();
  } catch (error) {
    return error;
  }
  return expect.unreachable("expected a throw");
}

async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

interface SeenRequest {
  readonly method: string | undefined;
  readonly url: string | undefined;
  readonly apiKey: string | string[] | undefined;
  readonly body: unknown;
}

async function fakeApi(
  answer: (request: IncomingMessage) => { readonly status: number; readonly body: unknown },
): Promise<{ readonly url: string; readonly requests: SeenRequest[]; close(): Promise<void> }> {
  const requests: SeenRequest[] = [];
  const server: Server = createServer((request, response) => {
    let raw = "";
    request.setEncoding("utf8");
    request.on("data", (chunk: string) => (raw += chunk));
    request.on("end", () => {
      requests.push({
        method: request.method,
        url: request.url,
        apiKey: request.headers["x-api-key"],
        body: raw === "" ? undefined : JSON.parse(raw),
      });
      const { status, body } = answer(request);
      response.writeHead(status, { "content-type": "application/json" }).end(JSON.stringify(body));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
