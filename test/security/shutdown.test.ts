import { spawn } from "node:child_process";
import { randomUUID } from "node:crypto";
import { once } from "node:events";
import { readdirSync, readFileSync } from "node:fs";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Stack, startStack } from "../../tools/dev/stack.ts";
import { CA_TRUST_VARIABLES } from "../../worker-build-runner/sandbox/bwrap-jail.ts";
import { hostProcesses, processesOf, waitUntil } from "./host.ts";
import { longBuildWithSurvivor, type UserClient, userClient } from "./jobs.ts";

// Builds die with the runner however it stops: SIGTERM (a deploy), SIGINT (Ctrl-C), and Ctrl-C
// of `npm start`, which signals its whole process group.
const ROOT = fileURLToPath(new URL("../../", import.meta.url));

describe("the runner's shutdown", () => {
  let stack: Stack;
  let user: UserClient;
  beforeAll(async () => {
    stack = await startStack({ runnerOutput: "ignore" });
    user = userClient(stack, "user_shutdown");
  }, 120_000);
  afterAll(async () => {
    await stack?.stop();
  }, 60_000);

  it.each(["SIGTERM", "SIGINT"] as const)(
    "on %s kills every build's processes, setsid ones too, and the job ends failed",
    async (signal) => {
      if (stack.runner.child.exitCode !== null) await stack.restartRunner();
      const marker = `shutdown-${randomUUID()}`;
      const jobId = await user.submit(longBuildWithSurvivor(marker));
      await waitUntil("the build's processes", 30_000, () =>
        hostProcesses(marker).length >= 2 ? true : undefined,
      );
      const exited = once(stack.runner.child, "exit");
      stack.runner.child.kill(signal);
      await exited;
      expect(hostProcesses(marker)).toEqual([]);
      expect((await user.finished(jobId)).status).toBe("failed");
    },
  );

  it("on SIGKILL, the builds die with it (bwrap --die-with-parent)", async () => {
    if (stack.runner.child.exitCode !== null) await stack.restartRunner();
    const marker = `sigkill-${randomUUID()}`;
    await user.submit(longBuildWithSurvivor(marker));
    await waitUntil("the build's processes", 30_000, () =>
      hostProcesses(marker).length >= 2 ? true : undefined,
    );
    await stack.runner.stop("SIGKILL");
    await waitUntil("the build's processes to be gone", 10_000, () =>
      hostProcesses(marker).length === 0 ? true : undefined,
    );
  });
});

describe("Ctrl-C of npm start", () => {
  it("leaves no build process behind", async () => {
    const env: Record<string, string> = { PATH: process.env.PATH ?? "" };
    for (const name of CA_TRUST_VARIABLES) {
      const value = process.env[name];
      if (value !== undefined) env[name] = value;
    }
    // Its own process group, as a terminal's foreground job: Ctrl-C signals all of it.
    const start = spawn(process.execPath, ["tools/dev/start.ts"], {
      cwd: ROOT,
      env,
      detached: true,
      stdio: ["ignore", "pipe", "inherit"],
    });
    const exited = once(start, "exit");
    try {
      const lines = createInterface({ input: start.stdout });
      // The demo job's build step is running: its processes are the runner's descendants.
      await new Promise<void>((resolve, reject) => {
        start.once("exit", () => reject(new Error("npm start exited early")));
        lines.on("line", (line) => {
          if (line.includes("--- Building ---")) resolve();
        });
      });
      const uids = await waitUntil("the build's processes", 10_000, () => {
        const found = buildUids(descendantsOf(start.pid ?? 0));
        return found.size > 0 ? found : undefined;
      });
      process.kill(-(start.pid ?? 0), "SIGINT");
      await exited;
      await waitUntil("the build's processes to be gone", 10_000, () =>
        processesOf(uids).length === 0 ? true : undefined,
      );
    } finally {
      if (start.exitCode === null) process.kill(-(start.pid ?? 0), "SIGKILL");
    }
  });
});

/** Pids of every process below `root` (by parent pid). */
function descendantsOf(root: number): number[] {
  const children = new Map<number, number[]>();
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const parent = Number(
        readFileSync(`/proc/${entry}/stat`, "utf8").split(") ")[1]?.split(" ")[1],
      );
      children.set(parent, [...(children.get(parent) ?? []), Number(entry)]);
    } catch {
      // gone meanwhile
    }
  }
  const found: number[] = [];
  const queue = [root];
  for (let pid = queue.shift(); pid !== undefined; pid = queue.shift()) {
    for (const child of children.get(pid) ?? []) {
      found.push(child);
      queue.push(child);
    }
  }
  return found;
}

/** The uids builds run as (each build's own, from 2^30), among these processes. */
function buildUids(pids: readonly number[]): Set<number> {
  const uids = new Set<number>();
  for (const pid of pids) {
    try {
      const uid = Number(/^Uid:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"))?.[1]);
      if (uid >= 2 ** 30) uids.add(uid);
    } catch {
      // gone meanwhile
    }
  }
  return uids;
}
