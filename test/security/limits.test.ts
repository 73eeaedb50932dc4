import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { localSandbox } from "../../worker-build-runner/sandbox/local.ts";
import type { CommandResult, SandboxSession } from "../../worker-build-runner/sandbox/types.ts";

// Each per-build limit of the isolated sandbox, small enough to reach quickly: the command fails,
// its result names the limit (run-job.ts turns that into a system line, shown end to end for the
// process limit in sandbox-attacks.test.ts), and the session stays usable.
const MIB = 1024 * 1024;
const sandbox = localSandbox({
  limits: { memoryBytes: 128 * MIB, processes: 64, cpuSeconds: 2, diskBytes: 32 * MIB },
});
let session: SandboxSession;
beforeEach(async () => {
  session = await sandbox.create();
});
afterEach(async () => {
  await session.kill();
});

const ignore = (): void => undefined;
const run = (command: string): Promise<CommandResult> =>
  session.run(command, { timeoutMs: 60_000, onStdout: ignore, onStderr: ignore });

describe("per-build limits", () => {
  it("memory: the build's processes together; over it they are killed", async () => {
    // Two processes of 80 MiB each: neither is over the limit alone, together they are.
    const grow = `node -e 'const a = []; for (let i = 0; i < 10; i++) a.push(Buffer.alloc(8 * 1024 * 1024, 1)); setInterval(() => {}, 1000)'`;
    const result = await run(`${grow} & ${grow} & wait`);
    expect(result.exitCode).not.toBe(0);
    expect(result.limit).toMatchObject({
      name: "memory",
      message: expect.stringContaining("memory limit (128 MiB)"),
    });
    expect(await run("echo still usable")).toEqual({ exitCode: 0, timedOut: false });
  });

  it("processes: forks past the limit are refused and the build's processes killed", async () => {
    const result = await run("for i in $(seq 200); do sleep 60 & done; wait");
    expect(result.limit).toMatchObject({
      name: "processes",
      message: expect.stringContaining("limit of 64 processes"),
    });
    expect(await run("echo still usable")).toEqual({ exitCode: 0, timedOut: false });
  });

  it("CPU time: the build's processes together; past it they are killed", async () => {
    // Four burners that each stop short of the limit alone (at 1.5 s of their own CPU time),
    // past it together. Left alone the command would exit 0 (wait without operands does): the
    // limit kills the shell as well.
    const burn = `node -e 'const t = () => process.cpuUsage().user + process.cpuUsage().system; while (t() < 1.5e6);'`;
    const result = await run(`${burn} & ${burn} & ${burn} & ${burn} & wait`);
    expect(result.exitCode).not.toBe(0);
    expect(result.limit).toMatchObject({
      name: "cpu",
      message: expect.stringContaining("CPU time limit (2 s, all its processes together)"),
    });
    // The build has used its time: what it runs next is killed as well.
    const next = await run(`${burn}`);
    expect(next.limit).toMatchObject({ name: "cpu" });
  });

  it("CPU time: a build under it runs to its end", async () => {
    const burn = `node -e 'const t = () => process.cpuUsage().user + process.cpuUsage().system; while (t() < 0.3e6);'`;
    expect(await run(`${burn} & ${burn} & wait`)).toEqual({ exitCode: 0, timedOut: false });
  });

  it("disk: the workdir's tmpfs fills, and /tmp's", async () => {
    const workdir = await run("dd if=/dev/zero of=big bs=1M count=64 status=none");
    expect(workdir.limit).toMatchObject({
      name: "disk",
      message: expect.stringContaining("32 MiB for /home/user"),
    });
    await run("rm big");
    const tmp = await run("dd if=/dev/zero of=/tmp/big bs=1M count=64 status=none");
    expect(tmp.limit).toMatchObject({ name: "disk", message: expect.stringContaining("/tmp") });
  });

  it("names no limit for an ordinary failure", async () => {
    expect(await run("exit 3")).toEqual({ exitCode: 3, timedOut: false });
  });
});
