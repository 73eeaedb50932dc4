import { env, exports } from "cloudflare:workers";
import { beforeAll, describe, expect, it } from "vitest";
import {
  archiveJob,
  archiveKey,
  archiveStoreFromEnv,
  r2Store,
  readArchivedLog,
  s3Store,
} from "../../src/log/archive.ts";
import type { LogLine } from "../../src/shared/entry.ts";
import type { JobRecord } from "../../src/shared/job.ts";
import { jobKey, logStreamKey, UNARCHIVED_JOBS_KEY } from "../../src/shared/keys.ts";
import { createJob, streamWriter, testRedis } from "../support/jobs.ts";
import { uniqueJobId } from "../support/redis.ts";
import { isEvent, sseReader } from "../support/sse.ts";
import { createTestSigner } from "../support/tokens.ts";

// A log outlives Redis's 24-hour copy: once archived to R2, history, the download and SSE
// resume give the same answers from the archive.
const redis = testRedis(env);
let token = "";

beforeAll(async () => {
  token = await (await createTestSigner(env.TEST_CLERK_SIGNING_JWK)).sign({ sub: "user_archive" });
});

const get = (path: string, headers: Record<string, string> = {}) =>
  exports.default.fetch(`http://example.com${path}`, {
    headers: { Authorization: `Bearer ${token}`, ...headers },
  });

async function endedJob(label: string) {
  const jobId = uniqueJobId(label);
  const job = await createJob(redis, jobId, "user_archive", "running");
  const writer = streamWriter(redis, jobId);
  const first = await writer.append("one", "two");
  await writer.append("three");
  await writer.end("ready", "--- Build finished ---");
  const ended: JobRecord = { ...job, status: "ready", finished_at: new Date().toISOString() };
  await redis.set(jobKey(jobId), JSON.stringify(ended));
  await redis.zadd(UNARCHIVED_JOBS_KEY, { score: Date.now(), member: jobId });
  return { jobId, first };
}

describe("the archive", () => {
  it("holds every line as gzip NDJSON, once, and marks the job archived", async () => {
    const { jobId } = await endedJob("archive");
    const store = r2Store(env.ARCHIVE);
    expect(await archiveJob(redis, store, jobId)).toMatchObject({ lines: 4 });
    const object = await env.ARCHIVE.get(archiveKey(jobId));
    expect(object?.httpMetadata?.contentEncoding).toBe("gzip");
    const archived = await readArchivedLog(store, jobId);
    expect(archived?.end).toBe("ready");
    expect(archived?.lines.map((line) => line.text)).toEqual([
      "one",
      "two",
      "three",
      "--- Build finished ---",
    ]);
    expect(await redis.zscore(UNARCHIVED_JOBS_KEY, jobId)).toBeNull();
    // Again: a no-op, the archive is written once.
    expect(await archiveJob(redis, store, jobId)).toEqual({ lines: 0, bytes: 0 });
  });

  it("is not written for a job that has not ended", async () => {
    const jobId = uniqueJobId("running");
    await createJob(redis, jobId, "user_archive", "running");
    expect(await archiveJob(redis, r2Store(env.ARCHIVE), jobId)).toBeNull();
    expect(await env.ARCHIVE.get(archiveKey(jobId))).toBeNull();
  });

  it("answers history, download and SSE resume the same once Redis's copy is gone", async () => {
    const { jobId, first } = await endedJob("expired");
    const fromRedis = (await (
      await get(`/api/jobs/${jobId}/logs?limit=2&before=${first.cursors[1]}`)
    ).json()) as { lines: LogLine[] };
    const allFromRedis = (await (await get(`/api/jobs/${jobId}/logs`)).json()) as {
      lines: LogLine[];
    };
    const textFromRedis = await (await get(`/api/jobs/${jobId}/logs.txt`)).text();
    await archiveJob(redis, r2Store(env.ARCHIVE), jobId);
    await redis.del(logStreamKey(jobId));

    expect(
      await (await get(`/api/jobs/${jobId}/logs?limit=2&before=${first.cursors[1]}`)).json(),
    ).toMatchObject({ lines: fromRedis.lines });
    expect(await (await get(`/api/jobs/${jobId}/logs`)).json()).toMatchObject({
      lines: allFromRedis.lines,
      has_more: false,
    });
    const text = await (await get(`/api/jobs/${jobId}/logs.txt`)).text();
    expect(text).toBe(textFromRedis);
    expect(text.split("\n").filter(Boolean)).toHaveLength(4);

    // This job's Durable Object never ran: it finds the stream gone and serves the archive.
    const stream = sseReader(
      await get(`/api/jobs/${jobId}/logs/stream`, { "Last-Event-ID": first.cursors[0] ?? "" }),
    );
    const texts: string[] = [];
    let frame = await stream.nextMatching(isEvent);
    while (frame?.event === "log") {
      texts.push(
        ...(JSON.parse(frame.data ?? "{}") as { lines: LogLine[] }).lines.map((line) => line.text),
      );
      frame = await stream.nextMatching(isEvent);
    }
    expect(texts).toEqual(["two", "three", "--- Build finished ---"]);
    expect(frame?.event).toBe("done");
    expect(JSON.parse(frame?.data ?? "{}")).toEqual({ status: "ready" });
    expect(await stream.next()).toBeNull();
  });
});

describe("the archive in S3", () => {
  const settings = () => ({
    endpoint: env.TEST_S3_ENDPOINT,
    bucket: "build-logs",
    region: "us-east-1",
    accessKeyId: "S3RVER",
    secretAccessKey: "S3RVER",
  });

  it("round-trips a log through an S3-compatible server with SigV4 requests", async () => {
    const { jobId } = await endedJob("s3");
    const store = s3Store(settings());
    expect(await archiveJob(redis, store, jobId)).toMatchObject({ lines: 4 });
    const archived = await readArchivedLog(store, jobId);
    expect(archived?.lines.map((line) => line.text)).toEqual([
      "one",
      "two",
      "three",
      "--- Build finished ---",
    ]);
    expect(archived?.end).toBe("ready");
    // Not in R2: it went to S3.
    expect(await env.ARCHIVE.get(archiveKey(jobId))).toBeNull();
  });

  it("reads a missing object as no archive", async () => {
    expect(await readArchivedLog(s3Store(settings()), uniqueJobId("absent"))).toBeNull();
  });

  it("is chosen when every S3 setting is given, R2 otherwise", () => {
    const s3 = {
      S3_ENDPOINT: env.TEST_S3_ENDPOINT,
      S3_BUCKET: "build-logs",
      S3_ACCESS_KEY_ID: "S3RVER",
      S3_SECRET_ACCESS_KEY: "S3RVER",
    };
    expect(archiveStoreFromEnv({ ...env, ...s3 } as Env).name).toBe("s3");
    expect(archiveStoreFromEnv({ ...env, ...s3, S3_BUCKET: "" } as Env).name).toBe("r2");
    expect(archiveStoreFromEnv(env).name).toBe("r2");
  });
});
