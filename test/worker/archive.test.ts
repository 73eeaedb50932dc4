import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { archiveStoreFromEnv, r2Store, s3Store } from "../../src/log/archive-store.ts";
import { archiveLog } from "../../src/log/archiver.ts";
import { ArchiveView, LogReader, readIndex } from "../../src/log/reader.ts";
import { decodeBlock, gunzip, gzip, indexKey, legacyArchiveKey } from "../../src/log/segments.ts";
import { parseArchiveState } from "../../src/shared/archive-state.ts";
import type { LogLine } from "../../src/shared/entry.ts";
import type { JobRecord } from "../../src/shared/job.ts";
import {
  archiveStateKey,
  jobKey,
  logStreamKey,
  UNARCHIVED_JOBS_KEY,
} from "../../src/shared/keys.ts";
import { endJobRecord, jobWithLog, testRedis } from "../support/jobs.ts";
import { uniqueJobId } from "../support/redis.ts";
import { isEvent, sseReader } from "../support/sse.ts";
import { testUser } from "../support/worker-client.ts";

// A log outlives Redis's 24-hour copy: it is archived as segments while the build runs, and
// history, the download and SSE resume give the same answers from the archive.
const redis = testRedis(env);
const owner = testUser("user_archive");

async function markEnded(job: JobRecord): Promise<void> {
  await endJobRecord(redis, job);
  await redis.zadd(UNARCHIVED_JOBS_KEY, { score: Date.now(), member: job.id });
}

async function endedJob(label: string) {
  const { jobId, job, writer } = await jobWithLog(redis, label, owner.id);
  const first = await writer.append("one", "two");
  await writer.append("three");
  await writer.end("ready", "--- Build finished ---");
  await markEnded(job);
  return { jobId, first };
}

async function allLines(reader: LogReader): Promise<LogLine[]> {
  const lines: LogLine[] = [];
  for await (const item of reader.forward(null))
    if (item.kind === "entry") lines.push(...item.entry.lines);
  return lines;
}

const small = { segmentLines: 10, blockLines: 4 };

describe("the archive", () => {
  it("writes each segment once it is complete, while the build runs, and the rest at the end", async () => {
    const { jobId, job, writer } = await jobWithLog(redis, "segments", owner.id);
    const texts = Array.from({ length: 25 }, (_, i) => `line ${i}`);
    for (let i = 0; i < 25; i += 5) await writer.append(...texts.slice(i, i + 5));
    const store = r2Store(env.ARCHIVE);

    // Running: two segments of 10 lines are complete; the last 5 lines wait for company.
    expect(await archiveLog(redis, store, jobId, small)).toMatchObject({
      segments: 2,
      lines: 20,
      complete: false,
      more: false,
      written: 2,
    });
    expect(parseArchiveState(await redis.get(archiveStateKey(jobId)))).toMatchObject({
      lines: 20,
      segments: 2,
      complete: false,
    });
    expect(await redis.zscore(UNARCHIVED_JOBS_KEY, jobId)).toBeNull();
    // Again, with nothing new: nothing is written twice.
    expect(await archiveLog(redis, store, jobId, small)).toMatchObject({ written: 0 });

    await writer.end("ready", "--- Build finished ---");
    await markEnded(job);
    expect(await archiveLog(redis, store, jobId, small)).toMatchObject({
      segments: 3,
      lines: 26,
      complete: true,
      written: 1,
    });
    const record = JSON.parse((await redis.get<string>(jobKey(jobId))) ?? "{}") as JobRecord;
    expect(record.archived_at).toBeTruthy();
    expect(await redis.zscore(UNARCHIVED_JOBS_KEY, jobId)).toBeNull();

    // Each block is a gzip member read by its byte range, with the cursors viewers saw.
    const index = await readIndex(store, jobId);
    expect(index?.end).toBe("ready");
    expect(index?.segments.map((segment) => segment.lines)).toEqual([10, 10, 6]);
    const fromRedis = await allLines(new LogReader(redis, store, jobId));
    const archived: LogLine[] = [];
    for (const segment of index?.segments ?? []) {
      expect(segment.blocks.length).toBeGreaterThan(1);
      for (const block of segment.blocks) {
        const bytes = await store.getRange(segment.key, block.offset, block.length);
        const entries = decodeBlock(await gunzip(bytes ?? new Uint8Array()), block.n);
        expect(entries[0]?.firstLine).toBe(block.n);
        archived.push(...entries.flatMap((entry) => entry.lines));
      }
    }
    expect(archived).toEqual(fromRedis);
    expect(archived.map((line) => line.text)).toEqual([...texts, "--- Build finished ---"]);
    expect(await archiveLog(redis, store, jobId, small)).toMatchObject({
      complete: true,
      written: 0,
    });
  });

  it("is not written for a job that does not exist, and leaves the sweep's list", async () => {
    const jobId = uniqueJobId("gone");
    await redis.zadd(UNARCHIVED_JOBS_KEY, { score: Date.now(), member: jobId });
    expect(await archiveLog(redis, r2Store(env.ARCHIVE), jobId)).toBeNull();
    expect(await redis.zscore(UNARCHIVED_JOBS_KEY, jobId)).toBeNull();
    expect(await env.ARCHIVE.get(indexKey(jobId))).toBeNull();
  });

  it("answers history, download and SSE resume the same once Redis's copy is gone", async () => {
    const { jobId, first } = await endedJob("expired");
    const fromRedis = (await (
      await owner.get(`/api/jobs/${jobId}/logs?limit=2&before=${first.cursors[1]}`)
    ).json()) as { lines: LogLine[] };
    const allFromRedis = (await (await owner.get(`/api/jobs/${jobId}/logs`)).json()) as {
      lines: LogLine[];
    };
    const forwardFromRedis = await (
      await owner.get(`/api/jobs/${jobId}/logs?limit=2&after=${first.cursors[0]}`)
    ).json();
    const textFromRedis = await (await owner.get(`/api/jobs/${jobId}/logs.txt`)).text();
    await archiveLog(redis, r2Store(env.ARCHIVE), jobId);
    await redis.del(logStreamKey(jobId));

    expect(
      await (await owner.get(`/api/jobs/${jobId}/logs?limit=2&before=${first.cursors[1]}`)).json(),
    ).toMatchObject({ lines: fromRedis.lines });
    expect(await (await owner.get(`/api/jobs/${jobId}/logs`)).json()).toMatchObject({
      lines: allFromRedis.lines,
      has_more: false,
    });
    expect(
      await (await owner.get(`/api/jobs/${jobId}/logs?limit=2&after=${first.cursors[0]}`)).json(),
    ).toEqual(forwardFromRedis);
    const text = await (await owner.get(`/api/jobs/${jobId}/logs.txt`)).text();
    expect(text).toBe(textFromRedis);
    expect(text.split("\n").filter(Boolean)).toHaveLength(4);

    // This job's Durable Object never ran: it finds the stream gone and serves the archive.
    const stream = sseReader(await owner.stream(jobId, { lastEventId: first.cursors[0] ?? "" }));
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

  it("still reads a whole-object archive written before segments", async () => {
    const { jobId } = await endedJob("legacy");
    const before = await (await owner.get(`/api/jobs/${jobId}/logs`)).json();
    const lines = await allLines(new LogReader(redis, r2Store(env.ARCHIVE), jobId));
    const ndjson = `${[...lines.map((line) => JSON.stringify(line)), JSON.stringify({ end: "ready" })].join("\n")}\n`;
    await env.ARCHIVE.put(legacyArchiveKey(jobId), await gzip(ndjson));
    await redis.del(logStreamKey(jobId));
    expect(await (await owner.get(`/api/jobs/${jobId}/logs`)).json()).toEqual(before);
    expect(await (await owner.get(`/api/jobs/${jobId}/logs.txt`)).text()).toContain("three");
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

  it("round-trips a log through an S3-compatible server, a block at a time by ranged reads", async () => {
    const { jobId, job, writer } = await jobWithLog(redis, "s3", owner.id);
    for (let i = 0; i < 6; i++) await writer.append(`a${i}`, `b${i}`, `c${i}`);
    await writer.end("ready", "fin");
    await markEnded(job);
    const store = s3Store(settings());
    expect(await archiveLog(redis, store, jobId, small)).toMatchObject({
      lines: 19,
      complete: true,
    });
    const view = await ArchiveView.open(store, jobId);
    const texts: string[] = [];
    for await (const entry of view?.forward(null, null) ?? [])
      texts.push(...entry.lines.map((l) => l.text));
    expect(texts).toHaveLength(19);
    expect(texts.at(-1)).toBe("fin");
    const newest: string[] = [];
    for await (const entry of view?.backward(null, null) ?? []) {
      newest.push(...entry.lines.map((l) => l.text).reverse());
      if (newest.length >= 4) break;
    }
    expect(newest.slice(0, 4)).toEqual(["fin", "c5", "b5", "a5"]);
    expect(await view?.end()).toBe("ready");
    // Not in R2: it went to S3.
    expect(await env.ARCHIVE.get(indexKey(jobId))).toBeNull();
  });

  it("reads a missing object as no archive", async () => {
    expect(await readIndex(s3Store(settings()), uniqueJobId("absent"))).toBeNull();
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
