import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createBuildLogClient } from "../../src/client/index.ts";
import { type Stack, startStack } from "../../tools/dev/stack.ts";

// The runner's GET /metrics (prom-client's text format) after a real build through the whole
// stack: the job counted by its status, its lines and bytes written, its sandbox's start timed.
let stack: Stack;

beforeAll(async () => {
  stack = await startStack({ runnerOutput: "ignore" });
}, 120_000);

afterAll(async () => {
  await stack?.stop();
}, 60_000);

/** `name{labels} value` lines as a map; the service label the registry adds is left out. */
async function scrape(): Promise<Map<string, number>> {
  const response = await fetch(`${stack.runner.url}/metrics`);
  expect(response.status).toBe(200);
  expect(response.headers.get("Content-Type")).toMatch(/^text\/plain; version=0\.0\.4/);
  const samples = new Map<string, number>();
  for (const line of (await response.text()).split("\n")) {
    if (line.startsWith("#") || line === "") continue;
    const [name = "", value = ""] = line
      .replace(/,?service="build-log-runner",?/, "")
      .replace("{}", "")
      .split(" ");
    samples.set(name, Number(value));
  }
  return samples;
}

describe("the runner's /metrics", () => {
  it("counts a finished job, its lines and bytes, and times its sandbox's start", async () => {
    const before = await scrape();
    expect(before.get("build_log_jobs_running")).toBe(0);
    const client = createBuildLogClient({
      baseUrl: stack.workerUrl,
      getToken: () => stack.signToken("user_metrics"),
    });
    const job = await client.createJob({
      steps: [{ name: "Counting", phase: "build", command: "seq 1 40; exit 2" }],
    });
    const { status, lines } = await client.openLog(job.id).collect();
    expect(status).toBe("failed");
    await expect
      .poll(async () => (await scrape()).get('build_log_jobs_finished_total{status="failed"}'), {
        timeout: 30_000,
      })
      .toBe(1);
    const after = await scrape();
    expect(after.get("build_log_jobs_running")).toBe(0);
    expect(after.get("build_log_lines_written_total")).toBe(lines.length);
    expect(after.get("build_log_bytes_written_total")).toBeGreaterThan(40 * 2);
    expect(after.get("build_log_sandbox_start_seconds_count")).toBe(1);
    expect(after.get("build_log_dropped_lines_total")).toBe(0);
    expect(after.get("build_log_redis_retries_total")).toBe(0);
    expect(after.get("build_log_buffered_bytes")).toBe(0);
  });
});
