import { env, exports } from "cloudflare:workers";
import { beforeAll, describe, expect, it } from "vitest";
import { r2Store } from "../../src/log/archive-store.ts";
import { archiveLog } from "../../src/log/archiver.ts";
import type { LogLine } from "../../src/shared/entry.ts";
import type { JobRecord } from "../../src/shared/job.ts";
import { jobKey, logStreamKey, UNARCHIVED_JOBS_KEY } from "../../src/shared/keys.ts";
import type { StepMark, StepSummary } from "../../src/shared/steps.ts";
import { createJob, streamWriter, testRedis } from "../support/jobs.ts";
import { uniqueJobId } from "../support/redis.ts";
import { isEvent, sseReader } from "../support/sse.ts";
import { createTestSigner } from "../support/tokens.ts";

// Step marks (entry format v3) are data on the lines themselves: every way of reading a log
// (history, the live stream, search, the archive) hands them on as the runner wrote them.
const redis = testRedis(env);
let token = "";

beforeAll(async () => {
  token = await (await createTestSigner(env.TEST_CLERK_SIGNING_JWK)).sign({ sub: "user_steps" });
});

const get = (path: string, headers: Record<string, string> = {}) =>
  exports.default.fetch(`http://example.com${path}`, {
    headers: { Authorization: `Bearer ${token}`, ...headers },
  });

const start: StepMark = { i: 0, name: "Installing", event: "start" };
const end: StepMark = {
  i: 0,
  name: "Installing",
  event: "end",
  status: "failed",
  exit: 1,
  ms: 2_500,
};
const summary: StepSummary = {
  index: 0,
  name: "Installing",
  phase: "build",
  status: "failed",
  started_at: "2026-12-02T06:00:00.000Z",
  finished_at: "2026-12-02T06:00:02.500Z",
  duration_ms: 2_500,
  exit_code: 1,
  first_line: 1,
  lines: 3,
};

async function failedJob(label: string) {
  const jobId = uniqueJobId(label);
  const job = await createJob(redis, jobId, "user_steps", "running");
  const writer = streamWriter(redis, jobId);
  await writer.append("--- Preparing the sandbox ---");
  await writer.appendLines([
    { text: "--- Installing ---", source: "system", step: start },
    { text: "npm error missing script" },
  ]);
  await writer.appendLines([
    { text: "Installing failed with exit code 1", source: "system", step: end },
  ]);
  await writer.end("failed");
  const ended: JobRecord = {
    ...job,
    status: "failed",
    finished_at: new Date().toISOString(),
    exit_code: 1,
    steps: [summary],
  };
  await redis.set(jobKey(jobId), JSON.stringify(ended));
  await redis.zadd(UNARCHIVED_JOBS_KEY, { score: Date.now(), member: jobId });
  return jobId;
}

const marks = (lines: readonly LogLine[]) =>
  lines.filter((line) => line.step !== undefined).map(({ n, step }) => ({ n, step }));
const expected = [
  { n: 1, step: start },
  { n: 3, step: end },
];

async function streamed(jobId: string): Promise<LogLine[]> {
  const stream = sseReader(await get(`/api/jobs/${jobId}/logs/stream?after=0-0:0`));
  const lines: LogLine[] = [];
  let frame = await stream.nextMatching(isEvent);
  while (frame?.event === "log") {
    lines.push(...(JSON.parse(frame.data ?? "{}") as { lines: LogLine[] }).lines);
    frame = await stream.nextMatching(isEvent);
  }
  expect(frame?.event).toBe("done");
  return lines;
}

describe("step marks", () => {
  it("come through history, the live stream and search, and the record lists the steps", async () => {
    const jobId = await failedJob("read");
    expect(await (await get(`/api/jobs/${jobId}`)).json()).toMatchObject({ steps: [summary] });
    const page = (await (await get(`/api/jobs/${jobId}/logs`)).json()) as { lines: LogLine[] };
    expect(marks(page.lines)).toEqual(expected);
    expect(marks(await streamed(jobId))).toEqual(expected);
    const search = (await (await get(`/api/jobs/${jobId}/logs/search?q=installing`)).json()) as {
      matches: LogLine[];
    };
    expect(marks(search.matches)).toEqual(expected);
  });

  it("come back the same from the archive once Redis's copy is gone", async () => {
    const jobId = await failedJob("archived");
    const before = await (await get(`/api/jobs/${jobId}/logs`)).json();
    expect(await archiveLog(redis, r2Store(env.ARCHIVE), jobId)).toMatchObject({ complete: true });
    await redis.del(logStreamKey(jobId));
    const after = (await (await get(`/api/jobs/${jobId}/logs`)).json()) as { lines: LogLine[] };
    expect(after).toEqual(before);
    expect(marks(after.lines)).toEqual(expected);
    expect(marks(await streamed(jobId))).toEqual(expected);
  });
});
