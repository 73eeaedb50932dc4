import type { Redis } from "@upstash/redis/cloudflare";
import { AwsClient } from "aws4fetch";
import { archiveRecord, DEFAULT_RECORD_TTL_SECONDS, recordSecondsLeft } from "../jobs/expiry.ts";
import { decodeStreamReply, type LogLine } from "../shared/entry.ts";
import { isTerminalStatus, parseJobRecord, type TerminalStatus } from "../shared/job.ts";
import { jobKey, logStreamKey, UNARCHIVED_JOBS_KEY } from "../shared/keys.ts";

/** Where ended logs go: R2 through its binding, or any S3-compatible store. */
export interface ArchiveStore {
  readonly name: "r2" | "s3";
  put(key: string, body: Uint8Array): Promise<void>;
  get(key: string): Promise<Uint8Array | null>;
}

export function archiveKey(jobId: string): string {
  return `build-logs/${jobId}/log.ndjson.gz`;
}

export function r2Store(bucket: R2Bucket): ArchiveStore {
  return {
    name: "r2",
    async put(key, body) {
      await bucket.put(key, body, {
        httpMetadata: { contentType: "application/x-ndjson", contentEncoding: "gzip" },
      });
    },
    async get(key) {
      const object = await bucket.get(key);
      return object === null ? null : new Uint8Array(await object.arrayBuffer());
    },
  };
}

export interface S3Settings {
  readonly endpoint: string;
  readonly bucket: string;
  readonly region: string;
  readonly accessKeyId: string;
  readonly secretAccessKey: string;
}

/** An S3-compatible bucket through aws4fetch (SigV4), path-style URLs. */
export function s3Store(settings: S3Settings): ArchiveStore {
  const client = new AwsClient({
    accessKeyId: settings.accessKeyId,
    secretAccessKey: settings.secretAccessKey,
    service: "s3",
    region: settings.region,
  });
  const url = (key: string) =>
    `${settings.endpoint.replace(/\/$/, "")}/${settings.bucket}/${key.split("/").map(encodeURIComponent).join("/")}`;
  return {
    name: "s3",
    async put(key, body) {
      // Stored as a gzip file, not as gzip-encoded NDJSON: with Content-Encoding: gzip, fetch
      // would decompress the object on the way back and the reader would gunzip it twice.
      const response = await client.fetch(url(key), {
        method: "PUT",
        body,
        headers: { "Content-Type": "application/gzip" },
      });
      if (!response.ok) throw new Error(`S3 PUT ${key} answered ${response.status}`);
    },
    async get(key) {
      const response = await client.fetch(url(key));
      if (response.status === 404) return null;
      if (!response.ok) throw new Error(`S3 GET ${key} answered ${response.status}`);
      return new Uint8Array(await response.arrayBuffer());
    },
  };
}

/** S3 when its settings are all given, else the R2 binding. */
export function archiveStoreFromEnv(env: Env): ArchiveStore {
  const vars = env as unknown as Partial<Record<string, string>>;
  const { S3_ENDPOINT, S3_BUCKET, S3_REGION, S3_ACCESS_KEY_ID, S3_SECRET_ACCESS_KEY } = vars;
  if (S3_ENDPOINT && S3_BUCKET && S3_ACCESS_KEY_ID && S3_SECRET_ACCESS_KEY) {
    return s3Store({
      endpoint: S3_ENDPOINT,
      bucket: S3_BUCKET,
      region: S3_REGION ?? "auto",
      accessKeyId: S3_ACCESS_KEY_ID,
      secretAccessKey: S3_SECRET_ACCESS_KEY,
    });
  }
  return r2Store(env.ARCHIVE);
}

async function gzip(text: string): Promise<Uint8Array> {
  const stream = new Blob([text]).stream().pipeThrough(new CompressionStream("gzip"));
  // R2 wants the length up front: buffer the compressed bytes.
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

async function gunzip(bytes: Uint8Array): Promise<string> {
  const stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream("gzip"));
  return new Response(stream).text();
}

const READ_ENTRIES = 500;

export interface ArchivedLog {
  readonly lines: LogLine[];
  readonly end: TerminalStatus | null;
}

/**
 * Archives an ended job's log once: every line from its Redis Stream as gzip NDJSON, one
 * `LogLine` per line and a last `{"end": status}` line, and its final record beside it; Redis's
 * record then expires `recordTtl` seconds after the job's end. Safe to repeat; a job already
 * archived is skipped. Returns null when the job has not ended (or its stream is gone unarchived).
 */
export async function archiveJob(
  redis: Redis,
  store: ArchiveStore,
  jobId: string,
  recordTtl: number = DEFAULT_RECORD_TTL_SECONDS,
): Promise<{ lines: number; bytes: number } | null> {
  const rawJob = await redis.get<string>(jobKey(jobId));
  if (rawJob === null) {
    // Nothing to archive any more: leave the sweep's list, or it would retry this forever.
    await redis.zrem(UNARCHIVED_JOBS_KEY, jobId);
    return null;
  }
  const job = parseJobRecord(rawJob);
  if (!isTerminalStatus(job.status)) return null;
  if (job.archived_at) {
    await redis.zrem(UNARCHIVED_JOBS_KEY, jobId);
    return { lines: 0, bytes: 0 };
  }
  const key = logStreamKey(jobId);
  const parts: string[] = [];
  let count = 0;
  let end: TerminalStatus | null = null;
  let start = "-";
  for (;;) {
    const entries = decodeStreamReply(await redis.xrange(key, start, "+", READ_ENTRIES));
    for (const entry of entries) {
      for (const line of entry.lines) parts.push(JSON.stringify(line));
      count += entry.lines.length;
      if (entry.end !== undefined) end = entry.end;
    }
    const last = entries.at(-1);
    if (last === undefined || entries.length < READ_ENTRIES) break;
    start = `(${last.id}`;
  }
  parts.push(JSON.stringify({ end: end ?? job.status }));
  const body = await gzip(`${parts.join("\n")}\n`);
  await store.put(archiveKey(jobId), body);
  const archived = { ...job, archived_at: new Date().toISOString() };
  // The record's copy goes to the archive first: only then may Redis's copy expire.
  await archiveRecord(store, archived);
  const p = redis.pipeline();
  p.set(jobKey(jobId), JSON.stringify(archived), { ex: recordSecondsLeft(archived, recordTtl) });
  p.zrem(UNARCHIVED_JOBS_KEY, jobId);
  await p.exec();
  return { lines: count, bytes: body.byteLength };
}

/** The archived log of a job, or null when it has none. */
export async function readArchivedLog(
  store: ArchiveStore,
  jobId: string,
): Promise<ArchivedLog | null> {
  const bytes = await store.get(archiveKey(jobId));
  if (bytes === null) return null;
  const lines: LogLine[] = [];
  let end: TerminalStatus | null = null;
  for (const text of (await gunzip(bytes)).split("\n")) {
    if (text === "") continue;
    const value = JSON.parse(text) as LogLine | { end: string };
    if ("end" in value) end = isTerminalStatus(value.end) ? value.end : null;
    else lines.push(value);
  }
  return { lines, end };
}
