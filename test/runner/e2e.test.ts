import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { LogLine } from "../../src/shared/entry.ts";
import type { JobRecord } from "../../src/shared/job.ts";
import { logStreamKey } from "../../src/shared/keys.ts";
import { type Stack, startStack } from "../../tools/dev/stack.ts";
import { createUpstashClient } from "../../worker-build-runner/redis.ts";
import { type StackUser, stackUser, untilDone } from "../support/stack-client.ts";

// The whole product on loopback, through its real parts: a job created over HTTP, the Queue
// consumer handing it to the runner process, the local sandbox running real commands, lines
// through the sanitizer into redis-server (via the Upstash bridge) and through the job's
// Durable Object to an EventSource client; then history, the archive in R2, and the sweep.
let stack: Stack;
let user: StackUser;
const SECRET = "e2e-Secret-Value-7f3a9c1d";

beforeAll(async () => {
  stack = await startStack({
    runnerLeaseMs: 1_500,
    runnerOutput: "ignore",
    workerVars: { SSE_HEARTBEAT_MS: "1000", LEASE_LAPSE_GRACE_MS: "2000" },
  });
  user = stackUser(stack, "user_e2e");
}, 120_000);

afterAll(async () => {
  await stack?.stop();
}, 60_000);

async function waitFor<T>(
  what: string,
  probe: () => Promise<T | null | undefined | false>,
): Promise<T> {
  for (let i = 0; i < 300; i++) {
    const value = await probe();
    if (value) return value;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`timed out waiting for ${what}`);
}

const BUILD_SCRIPT = `
const secret = process.env.API_TOKEN;
console.log("building " + require("./package.json").name);
for (let i = 1; i <= 300; i++) console.log("compiled module " + i + " of 300");
console.log("token is " + secret);
console.log("encoded " + Buffer.from(secret).toString("base64"));
console.error("warning: large chunk");
console.log("\\u001b[32mdone\\u001b[39m");
`;

describe("a job end to end", () => {
  it("streams every line once and in order, ends with done, and keeps the secret out of everything", async () => {
    const jobId = await user.createJob({
      files: { "package.json": '{"name":"e2e-app","version":"1.0.0"}', "build.js": BUILD_SCRIPT },
      secrets: { API_TOKEN: SECRET },
      steps: [
        { name: "Installing dependencies", phase: "install", command: "echo 'added 0 packages'" },
        { name: "Building", phase: "build", command: "node build.js" },
      ],
    });
    const { lines, raw, status } = await untilDone(user.follow(jobId));
    expect(status).toBe("ready");
    const texts = lines.map((line) => line.text);
    const modules = texts.filter((text) => text.startsWith("compiled module "));
    expect(modules).toEqual(
      Array.from({ length: 300 }, (_, i) => `compiled module ${i + 1} of 300`),
    );
    expect(texts).toEqual(
      expect.arrayContaining([
        "--- Installing dependencies ---",
        "added 0 packages",
        "--- Building ---",
        "building e2e-app",
        "token is [REDACTED]",
        "encoded [REDACTED]",
        "warning: large chunk",
        "done",
      ]),
    );
    expect(new Set(lines.map((line) => line.cursor)).size).toBe(lines.length);

    // The history endpoint returns the same lines.
    const history: LogLine[] = [];
    let after = "0-0:0";
    for (let page = 0; page < 20; page++) {
      const response = await user.api(`/api/jobs/${jobId}/logs?after=${after}&limit=100`);
      const body = (await response.json()) as {
        lines: LogLine[];
        has_more: boolean;
        cursors: { after: string };
      };
      history.push(...body.lines);
      after = body.cursors.after;
      if (!body.has_more) break;
    }
    expect(history).toEqual(lines);

    const job = (await (await user.api(`/api/jobs/${jobId}`)).json()) as JobRecord;
    expect(job.status).toBe("ready");
    // Each step's start and end are marks on its system lines, as the live stream carried them,
    // and the record lists the steps with where they start and how many lines they have.
    const marks = lines.filter((line) => line.step !== undefined);
    expect(marks.map((line) => [line.step?.i, line.step?.event])).toEqual([
      [0, "start"],
      [0, "end"],
      [1, "start"],
      [1, "end"],
    ]);
    expect(
      job.steps?.map(({ name, status, first_line, lines: count }) => ({
        name,
        status,
        first_line,
        count,
      })),
    ).toEqual([
      {
        name: "Installing dependencies",
        status: "succeeded",
        first_line: marks[0]?.n,
        count: (marks[1]?.n ?? 0) - (marks[0]?.n ?? 0) + 1,
      },
      {
        name: "Building",
        status: "succeeded",
        first_line: marks[2]?.n,
        count: (marks[3]?.n ?? 0) - (marks[2]?.n ?? 0) + 1,
      },
    ]);

    // The secret is nowhere: not in Redis, not on the SSE stream, not in the archive.
    const redis = createUpstashClient({ url: stack.bridge.url, token: stack.bridge.token });
    const base64 = Buffer.from(SECRET).toString("base64");
    const inRedis = JSON.stringify(await redis.xrange(logStreamKey(jobId), "-", "+"));
    for (const place of [inRedis, raw.join("\n")]) {
      expect(place).not.toContain(SECRET);
      expect(place).not.toContain(base64.slice(0, 16));
    }

    // After archiving (the runner told the Worker), with Redis's copy deleted, history and the
    // download still return the same lines, from R2.
    await waitFor(
      "the archive",
      async () =>
        ((await (await user.api(`/api/jobs/${jobId}`)).json()) as { archived_at?: string })
          .archived_at,
    );
    const before = await (await user.api(`/api/jobs/${jobId}/logs.txt`)).text();
    expect(before).not.toContain(SECRET);
    await redis.del(logStreamKey(jobId));
    const fromArchive = (await (
      await user.api(`/api/jobs/${jobId}/logs?after=0-0:0&limit=500`)
    ).json()) as { lines: LogLine[] };
    expect(fromArchive.lines).toEqual(lines);
    const text = await (await user.api(`/api/jobs/${jobId}/logs.txt`)).text();
    expect(text).toBe(before);
    expect(text).toContain("compiled module 300 of 300");
    expect(text).not.toContain(SECRET);
    // A late viewer resuming from a cursor gets the rest from the archive, then done.
    const resumed = await untilDone(user.follow(jobId));
    expect(resumed.status).toBe("ready");
    expect(resumed.lines).toEqual(lines);
  }, 120_000);

  it("fails a job whose command fails, with its exit code in a system line", async () => {
    const jobId = await user.createJob({
      steps: [
        { name: "Building", phase: "build", command: "echo 'Type error in src/app.ts'; exit 2" },
      ],
    });
    const { lines, status } = await untilDone(user.follow(jobId));
    expect(status).toBe("failed");
    expect(lines.map((line) => line.text)).toEqual(
      expect.arrayContaining(["Type error in src/app.ts", "Building failed with exit code 2"]),
    );
    expect(
      (
        (await (await user.api(`/api/jobs/${jobId}`)).json()) as {
          status: string;
          exit_code: number;
        }
      ).exit_code,
    ).toBe(2);
  }, 120_000);

  it("when the runner is killed mid-job, the sweep fails the job, viewers get done, and the log is archived", async () => {
    const jobId = await user.createJob({
      steps: [{ name: "Long build", phase: "build", command: "echo started; sleep 120" }],
    });
    const viewer = untilDone(user.follow(jobId));
    await waitFor(
      "the job to start",
      async () =>
        ((await (await user.api(`/api/jobs/${jobId}`)).json()) as { status: string }).status ===
        "running",
    );
    await waitFor("its first line", async () =>
      (
        (await (await user.api(`/api/jobs/${jobId}/logs`)).json()) as { lines: LogLine[] }
      ).lines.some((line) => line.text === "started"),
    );
    await stack.restartRunner(); // SIGKILL: no goodbye, no terminal entry
    // The lease runs out, then the sweep (a Cron Trigger; here called directly) notices.
    const swept = await waitFor("the sweep to fail the job", async () => {
      const response = await fetch(`${stack.workerUrl}/internal/sweep`, {
        method: "POST",
        headers: { Authorization: `Bearer ${stack.runnerToken}` },
      });
      const result = (await response.json()) as { failed: string[] };
      return result.failed.includes(jobId) ? result : null;
    });
    expect(swept.failed).toContain(jobId);
    const { lines, status } = await viewer;
    expect(status).toBe("failed");
    expect(lines.map((line) => line.text)).toEqual(
      expect.arrayContaining([
        "started",
        "The build runner was lost (it stopped reporting); this job has been marked failed.",
      ]),
    );
    await waitFor("the archive", async () => {
      await fetch(`${stack.workerUrl}/internal/sweep`, {
        method: "POST",
        headers: { Authorization: `Bearer ${stack.runnerToken}` },
      });
      return ((await (await user.api(`/api/jobs/${jobId}`)).json()) as { archived_at?: string })
        .archived_at;
    });
  }, 120_000);

  it("refuses a malformed job with 400 and a stable code", async () => {
    const response = await user.api("/api/jobs", {
      method: "POST",
      body: JSON.stringify({ steps: [{ name: "x", phase: "Bad Phase", command: "true" }] }),
    });
    expect(response.status).toBe(400);
    expect(await response.json()).toMatchObject({ error: { code: "invalid_job" } });
  });
});
