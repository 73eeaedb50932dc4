import type { Redis } from "@upstash/redis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { logStreamKey } from "../../src/shared/keys.ts";
import { type Stack, startStack } from "../../tools/dev/stack.ts";
import { stackRedis } from "../support/stack-client.ts";
import { step, type UserClient, userClient } from "./jobs.ts";

// A hostile build against what one job may take of the runner's machine and of Redis, through
// the real stack with the isolated sandbox: small limits (the runner's variables) so they are
// reached quickly.
const CPU_SECONDS = 3;
const MIB = 1024 * 1024;
const LIVE_MAX_BYTES = MIB;
let stack: Stack;
let attacker: UserClient;
let redis: Redis;

beforeAll(async () => {
  stack = await startStack({
    runnerOutput: "ignore",
    runnerVars: {
      SANDBOX_CPU_SECONDS: String(CPU_SECONDS),
      LIVE_MAX_MB: String(LIVE_MAX_BYTES / MIB),
      // More lines than the build prints: only the byte cap can keep its key small.
      LIVE_TAIL_LINES: "20000",
    },
  });
  attacker = userClient(stack, "user_hog");
  redis = stackRedis(stack);
}, 120_000);

afterAll(async () => {
  await stack?.stop();
}, 60_000);

describe("a build that hogs", () => {
  it("CPU with many processes is failed when they together pass the build's limit, naming it", async () => {
    // Each burner stops at 2 s of its own CPU time, under the limit alone; four are over it.
    const burn = `node -e 'const t = () => process.cpuUsage().user + process.cpuUsage().system; while (t() < 2e6);'`;
    const jobId = await attacker.submit({
      steps: [
        step("Burning", `${burn} & ${burn} & ${burn} & ${burn} & wait`),
        step("Afterwards", "echo unreachable"),
      ],
    });
    const { status, log } = await attacker.finished(jobId);
    expect(status).toBe("failed");
    expect(log).toContain(
      `Burning stopped: the build went over its CPU time limit (${CPU_SECONDS} s, all its processes together); its processes were killed`,
    );
    expect(log).not.toContain("unreachable");
  });

  it("cannot leave its cgroup to hide its CPU time: a nested namespace may mount cgroup2 but not move into or make a group", async () => {
    const burn = `node -e 'const t = () => process.cpuUsage().user + process.cpuUsage().system; while (t() < 2e6);'`;
    const breakOut = `unshare -UrmC sh -c 'mount -t cgroup2 none /tmp && echo MOUNTED; echo $$ > /tmp/cgroup.procs && echo MOVED; mkdir /tmp/free && echo MADE' 2>&1`;
    const jobId = await attacker.submit({
      steps: [step("Escaping", `${breakOut}; ${burn} & ${burn} & ${burn} & ${burn} & wait`)],
    });
    const { status, log } = await attacker.finished(jobId);
    expect(status).toBe("failed");
    expect(log).not.toContain("MOVED");
    expect(log).not.toContain("MADE");
    expect(log).toContain("Escaping stopped: the build went over its CPU time limit");
  });

  it("Redis with 24 MB of long lines keeps its key bounded by the byte cap, every line kept", async () => {
    // 12,000 lines of 2,000 characters, within the tail's 20,000 lines.
    const print = `node -e 'const x = "x".repeat(1990); for (let i = 0; i < 12000; i++) process.stdout.write("row " + String(i).padStart(5, "0") + " " + x + "\\n")'`;
    const jobId = await attacker.submit({ steps: [step("Printing", print)] });
    let peak = 0;
    const measuring = (async () => {
      for (;;) {
        peak = Math.max(peak, await streamBytes(jobId));
        const status = await attacker.status(jobId);
        if (status === "ready" || status === "failed") return;
        await new Promise((resolve) => setTimeout(resolve, 200));
      }
    })();
    const { status, log } = await attacker.finished(jobId);
    await measuring;
    expect(status).toBe("ready");
    // The cap, the 12 MiB the runner lets the archive take to complete a segment, and one
    // request (4 MiB): far under what the build printed, and Upstash's 100 MB per key.
    expect(peak).toBeLessThanOrEqual(LIVE_MAX_BYTES + 16 * MIB);
    // Nothing lost: the download reads the archive, with every row once and in order.
    // Lines of the download: "<time> stdout row 00000 xxx...".
    const rows = [...log.matchAll(/ stdout row (\d{5}) /g)].map((match) => Number(match[1]));
    expect(rows).toEqual(Array.from({ length: 12_000 }, (_, i) => i));
    expect(log).not.toMatch(/left the live copy before the archive had them/);
  });
});

/** What a job's stream key holds: its fields' names and values as Redis keeps them. */
async function streamBytes(jobId: string): Promise<number> {
  // Raw (automaticDeserialization: false): [[id, [field, value, ...]], ...].
  const reply = (await redis.xrange(logStreamKey(jobId), "-", "+")) as unknown as [
    string,
    string[],
  ][];
  return reply.flatMap(([, fields]) => fields).reduce((sum, text) => sum + text.length, 0);
}
