import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createBuildLogClient } from "../../src/client/index.ts";
import { REDACTION_FAMILIES } from "../../src/shared/sanitize/redaction-families.ts";
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

async function scrapeText(): Promise<string> {
  const response = await fetch(`${stack.runner.url}/metrics`);
  expect(response.status).toBe(200);
  expect(response.headers.get("Content-Type")).toMatch(/^text\/plain; version=0\.0\.4/);
  return response.text();
}

/** `name{labels} value` lines as a map; the service label the registry adds is left out. */
async function scrape(): Promise<Map<string, number>> {
  const samples = new Map<string, number>();
  for (const line of (await scrapeText()).split("\n")) {
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

  it("counts the secrets a build printed by rule family, and nothing of them in its labels", async () => {
    const secret = "registered-value-9f8e7d6c";
    const token = "ghp_0123456789abcdefghijABCDEFGHIJ012345";
    const family = (name: string) => `build_log_redactions_total{family="${name}"}`;
    const before = await scrape();
    for (const name of REDACTION_FAMILIES) expect(before.get(family(name))).toBeTypeOf("number");
    const client = createBuildLogClient({
      baseUrl: stack.workerUrl,
      getToken: () => stack.signToken("user_metrics_redactions"),
    });
    // Two families: the job's own secret (printed twice) and a GitHub token (a token rule).
    const job = await client.createJob({
      steps: [
        {
          name: "Leaking",
          phase: "build",
          command: `echo "$DEPLOY_SECRET"; echo "again: $DEPLOY_SECRET"; echo "${token}"`,
        },
      ],
      secrets: { DEPLOY_SECRET: secret },
    });
    const { status, lines } = await client.openLog(job.id).collect();
    expect(status).toBe("ready");
    const texts = lines.map((line) => line.text);
    expect(texts).toEqual(expect.arrayContaining(["[REDACTED]", "again: [REDACTED]"]));
    expect(texts.join("\n")).not.toContain(secret);
    const text = await scrapeText();
    expect(text).not.toContain(secret);
    expect(text).not.toContain(token);
    const after = await scrape();
    const delta = (name: string) =>
      (after.get(family(name)) ?? 0) - (before.get(family(name)) ?? 0);
    expect(Object.fromEntries(REDACTION_FAMILIES.map((name) => [name, delta(name)]))).toEqual({
      ...Object.fromEntries(REDACTION_FAMILIES.map((name) => [name, 0])),
      "registered-value": 2,
      token: 1,
    });
    // Every label the counter has is a family: no value, rule or job id.
    const labels = [...text.matchAll(/^build_log_redactions_total\{([^}]*)\}/gm)].map((match) =>
      match[1]?.replace(/,?service="build-log-runner",?/, ""),
    );
    expect(labels.sort()).toEqual(REDACTION_FAMILIES.map((name) => `family="${name}"`).sort());
  });
});
