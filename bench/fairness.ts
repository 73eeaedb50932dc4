// npm run bench:fairness: one user's backlog against another user's single job, through the
// whole system on this machine (tools/dev/stack.ts: the Worker, its Queue and dispatcher in
// local workerd, the runner with the local sandbox, redis behind the Upstash bridge).
// User A submits 30 jobs, then user B submits one. Printed: when B's job starts (from its
// POST), how many of A's jobs started between B's POST and B's start, and how long all 31
// took; for the fair dispatcher (DISPATCH_ORDER=fair, the default) and, in the same run, for
// first come, first served (DISPATCH_ORDER=fifo) as the baseline.
//
//   npm run bench:fairness [-- --jobs 30 --job-ms 500]
import { parseArgs } from "node:util";
import type { JobRecord } from "../src/shared/job.ts";
import { startStack } from "../tools/dev/stack.ts";

const { values: flags } = parseArgs({
  options: {
    jobs: { type: "string", default: "30" },
    "job-ms": { type: "string", default: "500" },
  },
});
const backlog = Number(flags.jobs);
const jobMs = Number(flags["job-ms"]);
if (!Number.isInteger(backlog) || backlog < 1 || !Number.isInteger(jobMs) || jobMs < 0) {
  console.error("--jobs must be a positive integer and --job-ms a non-negative one");
  process.exit(2);
}

interface Run {
  readonly order: "fair" | "fifo";
  /** From B's POST answer to B's start. */
  readonly bWaitMs: number;
  /** A's jobs that started after B's POST and before B's start. */
  readonly aStartsAhead: number;
  readonly totalMs: number;
}

async function run(order: "fair" | "fifo"): Promise<Run> {
  const stack = await startStack({
    runnerOutput: "ignore",
    workerVars: { DISPATCH_ORDER: order, JOBS_PER_USER_PER_MINUTE: String(backlog + 10) },
  });
  try {
    const api = async (userId: string, path: string, init: RequestInit = {}) => {
      const response = await fetch(new URL(path, stack.workerUrl), {
        ...init,
        headers: {
          Authorization: `Bearer ${stack.signToken(userId, 600)}`,
          "Content-Type": "application/json",
        },
      });
      if (!response.ok)
        throw new Error(`${path} answered ${response.status}: ${await response.text()}`);
      return (await response.json()) as JobRecord;
    };
    const spec = JSON.stringify({
      steps: [{ name: "Work", phase: "build", command: `sleep ${jobMs / 1000}` }],
    });
    const create = (userId: string) => api(userId, "/api/jobs", { method: "POST", body: spec });
    const began = performance.now();
    const aJobs: string[] = [];
    for (let i = 0; i < backlog; i++) aJobs.push((await create("user_bench_a")).id);
    const bJob = (await create("user_bench_b")).id;
    const bPostedAt = Date.now();
    const records = async () =>
      Promise.all([
        ...aJobs.map((id) => api("user_bench_a", `/api/jobs/${id}`)),
        api("user_bench_b", `/api/jobs/${bJob}`),
      ]);
    let all = await records();
    const deadline = Date.now() + 10 * 60_000;
    while (all.some((job) => job.finished_at === null)) {
      if (Date.now() > deadline) throw new Error("the jobs did not finish within 10 minutes");
      await new Promise((resolve) => setTimeout(resolve, 250));
      all = await records();
    }
    const totalMs = performance.now() - began;
    const b = all.at(-1);
    const bStart = Date.parse(b?.started_at ?? "");
    const aStarts = all.slice(0, -1).map((job) => Date.parse(job.started_at ?? ""));
    return {
      order,
      bWaitMs: bStart - bPostedAt,
      aStartsAhead: aStarts.filter((at) => at > bPostedAt && at < bStart).length,
      totalMs,
    };
  } finally {
    await stack.stop();
  }
}

console.log(
  `user A submits ${backlog} jobs of ${jobMs} ms, then user B one; runner: 2 slots, 2 running jobs per user`,
);
const fair = await run("fair");
const fifo = await run("fifo");
for (const result of [fair, fifo]) {
  console.log(
    `${result.order.padEnd(4)}  B starts ${(result.bWaitMs / 1000).toFixed(2)} s after its POST, ` +
      `after ${result.aStartsAhead} more of A's jobs started; all ${backlog + 1} done in ${(result.totalMs / 1000).toFixed(1)} s`,
  );
}
const ratio = fifo.bWaitMs / Math.max(1, fair.bWaitMs);
console.log(`B waits ${ratio.toFixed(1)}x less with fair dispatch than first come, first served`);
console.log(
  `fairness jobs=${backlog} job_ms=${jobMs} b_wait_fair_ms=${Math.round(fair.bWaitMs)} b_wait_fifo_ms=${Math.round(fifo.bWaitMs)} a_starts_ahead_fair=${fair.aStartsAhead} a_starts_ahead_fifo=${fifo.aStartsAhead} ratio=${ratio.toFixed(1)}`,
);
process.exitCode = fair.aStartsAhead <= 1 ? 0 : 1;
