import {
  AuthenticationError,
  CommandExitError,
  Sandbox,
  SandboxNotFoundError,
  TimeoutError,
} from "e2b";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { E2BLocalServer } from "../../tools/e2b-local/server.ts";
import { startE2BLocalServer } from "../../tools/e2b-local/server.ts";
import { localSandbox } from "../../worker-build-runner/sandbox/local.ts";

// tools/e2b-local as the unchanged SDK sees it: what E2B answers, as the SDK's own error
// classes and results show it.
const API_KEY = "e2b_local_protocol_key";
let server: E2BLocalServer;
let connection: { apiKey: string; apiUrl: string; sandboxUrl: string };

beforeAll(async () => {
  server = await startE2BLocalServer({ sandbox: localSandbox(), apiKey: API_KEY });
  connection = { apiKey: API_KEY, apiUrl: server.url, sandboxUrl: server.url };
});
afterAll(async () => {
  await server.close();
});

async function rejection(promise: Promise<unknown>): Promise<unknown> {
  return promise.then(
    () => expect.unreachable("expected a rejection"),
    (error: unknown) => error,
  );
}

describe("e2b-local through the e2b SDK", () => {
  it("refuses a wrong API key as E2B does", async () => {
    const error = await rejection(Sandbox.create({ ...connection, apiKey: "e2b_wrong" }));
    expect(error).toBeInstanceOf(AuthenticationError);
    expect(server.runningSandboxes()).toHaveLength(0);
  });

  it("creates, describes, lists, extends and kills a sandbox", async () => {
    const sandbox = await Sandbox.create({ ...connection, timeoutMs: 60_000 });
    try {
      const info = await sandbox.getInfo();
      expect(info).toMatchObject({ sandboxId: sandbox.sandboxId, templateId: "base" });
      expect(info.endAt.getTime() - info.startedAt.getTime()).toBeGreaterThan(55_000);
      await sandbox.setTimeout(600_000);
      const extended = await sandbox.getInfo();
      expect(extended.endAt.getTime() - Date.now()).toBeGreaterThan(500_000);
      const listed = await Sandbox.list(connection).nextItems();
      expect(listed.map((item) => item.sandboxId)).toContain(sandbox.sandboxId);
      expect(await sandbox.isRunning()).toBe(true);
    } finally {
      expect(await sandbox.kill()).toBe(true);
    }
    expect(await Sandbox.kill(sandbox.sandboxId, connection)).toBe(false);
    expect(await rejection(Sandbox.getInfo(sandbox.sandboxId, connection))).toBeInstanceOf(
      SandboxNotFoundError,
    );
    expect(await sandbox.isRunning()).toBe(false);
    // envd of a sandbox that is gone answers 502, as E2B's edge does.
    expect(await rejection(sandbox.commands.run("true"))).toBeInstanceOf(SandboxNotFoundError);
  });

  it("runs commands with their env and cwd, and reports an exit code as envd does", async () => {
    const sandbox = await Sandbox.create({
      ...connection,
      envs: { FROM_SANDBOX: "sandbox" },
      timeoutMs: 60_000,
    });
    try {
      await sandbox.files.makeDir("work/dir");
      const result = await sandbox.commands.run('echo "$FROM_SANDBOX $FROM_COMMAND $(pwd)"', {
        envs: { FROM_COMMAND: "command" },
        cwd: "work/dir",
      });
      const home = (await sandbox.commands.run('printf %s "$HOME"')).stdout;
      expect(result).toMatchObject({ exitCode: 0, stdout: `sandbox command ${home}/work/dir\n` });
      const failed = await rejection(sandbox.commands.run("echo bad >&2; exit 7"));
      expect(failed).toBeInstanceOf(CommandExitError);
      expect(failed).toMatchObject({ exitCode: 7, stderr: "bad\n", error: "exit status 7" });
    } finally {
      await sandbox.kill();
    }
  });

  it("ends a command at its Connect-Timeout-Ms and kills a background one on request", async () => {
    const sandbox = await Sandbox.create({ ...connection, timeoutMs: 60_000 });
    try {
      expect(await rejection(sandbox.commands.run("sleep 30", { timeoutMs: 500 }))).toBeInstanceOf(
        TimeoutError,
      );
      const server = await sandbox.commands.run("echo up; exec sleep 300", { background: true });
      const listed = await sandbox.commands.list();
      expect(listed.map((process) => process.pid)).toContain(server.pid);
      expect(await server.kill()).toBe(true);
      const ended = await rejection(server.wait());
      expect(ended).toMatchObject({ exitCode: -1, error: "signal: killed" });
      expect(server.stdout).toBe("up\n");
      expect(await sandbox.commands.kill(server.pid)).toBe(false);
    } finally {
      await sandbox.kill();
    }
  });

  it("writes and reads files, and answers a missing one with NotFound", async () => {
    const sandbox = await Sandbox.create({ ...connection, timeoutMs: 60_000 });
    try {
      const bytes = Uint8Array.from({ length: 256 }, (_, index) => index);
      await sandbox.files.write("data/all.bin", bytes.buffer);
      expect(await sandbox.files.read("data/all.bin", { format: "bytes" })).toEqual(bytes);
      await sandbox.files.write("data/text.txt", "héllo 🚀");
      expect(await sandbox.files.read("data/text.txt")).toBe("héllo 🚀");
      const entries = await sandbox.files.list("data");
      expect(entries.map((entry) => [entry.name, entry.type, entry.size])).toEqual(
        expect.arrayContaining([
          ["all.bin", "file", 256],
          ["text.txt", "file", 11],
        ]),
      );
      expect(await sandbox.files.makeDir("data")).toBe(false);
      expect(await sandbox.files.exists("data/missing.txt")).toBe(false);
      expect(await rejection(sandbox.files.read("data/missing.txt"))).toMatchObject({
        name: expect.stringMatching(/NotFound/),
      });
    } finally {
      await sandbox.kill();
    }
  });

  it("cuts a sandbox's streams when its own timeout passes, which the SDK reports as its end", async () => {
    const sandbox = await Sandbox.create({ ...connection, timeoutMs: 1_000 });
    const error = await rejection(sandbox.commands.run("echo started; sleep 30"));
    expect(error).toBeInstanceOf(TimeoutError);
    expect((error as Error).message).toContain("sandbox was killed or reached its end of life");
    expect(server.runningSandboxes().map((hosted) => hosted.id)).not.toContain(sandbox.sandboxId);
  });
});
