import { Redis } from "@upstash/redis/cloudflare";
import {
  encodeEndFields,
  encodeEntryFields,
  formatCursor,
  type LogRecord,
  type LogSource,
} from "../../src/shared/entry.ts";
import type { JobRecord, TerminalStatus } from "../../src/shared/job.ts";
import { jobKey, logStreamKey } from "../../src/shared/keys.ts";
import type { StepMark } from "../../src/shared/steps.ts";
import { uniqueJobId } from "./redis.ts";

/** The test's hand on Redis, as the runner would hold it: job records and stream entries. */
export function testRedis(env: {
  UPSTASH_REDIS_REST_URL: string;
  UPSTASH_REDIS_REST_TOKEN: string;
}): Redis {
  return new Redis({
    url: env.UPSTASH_REDIS_REST_URL,
    token: env.UPSTASH_REDIS_REST_TOKEN,
    automaticDeserialization: false,
  });
}

export async function createJob(
  redis: Redis,
  jobId: string,
  owner: string,
  status: JobRecord["status"] = "running",
): Promise<JobRecord> {
  const now = new Date().toISOString();
  const job: JobRecord = {
    id: jobId,
    owner,
    status,
    created_at: now,
    started_at: status === "queued" ? null : now,
    finished_at: null,
  };
  await redis.set(jobKey(jobId), JSON.stringify(job));
  return job;
}

/**
 * Stores the job's record as ended, as the Worker does when the runner reports the end: ready
 * and finished now, unless `changes` say otherwise.
 */
export async function endJobRecord(
  redis: Redis,
  job: JobRecord,
  changes: Partial<JobRecord> = {},
): Promise<JobRecord> {
  const ended: JobRecord = {
    ...job,
    status: "ready",
    finished_at: new Date().toISOString(),
    ...changes,
  };
  await redis.set(jobKey(job.id), JSON.stringify(ended));
  return ended;
}

/** How many job records the user owns, found by scanning Redis as an attack's leftovers would be. */
export async function recordsOwnedBy(
  redis: Pick<Redis, "scan" | "mget">,
  owner: string,
): Promise<number> {
  let cursor = "0";
  let owned = 0;
  do {
    const [next, keys] = await redis.scan(cursor, { match: "job:*:meta", count: 1000 });
    cursor = String(next);
    if (keys.length === 0) continue;
    const records = await redis.mget<(string | null)[]>(...keys);
    owned += records.filter((raw) => raw?.includes(`"owner":"${owner}"`)).length;
  } while (cursor !== "0");
  return owned;
}

/**
 * A job of the owner's under a fresh id made from `label`: its record in Redis and a writer for
 * its log, as the runner has it once the job runs.
 */
export async function jobWithLog(
  redis: Redis,
  label: string,
  owner: string,
  status: JobRecord["status"] = "running",
) {
  const jobId = uniqueJobId(label);
  const job = await createJob(redis, jobId, owner, status);
  return { jobId, job, writer: streamWriter(redis, jobId) };
}

/**
 * Appends entries as the runner does: explicit increasing ids, several lines per entry.
 * Returns the entry ids and every line's cursor.
 */
export function streamWriter(
  redis: Redis,
  jobId: string,
  options: {
    numbered?: boolean;
    /** Every line's time, for a test that expects exact bytes; by default the time of writing. */
    ts?: string;
  } = {},
) {
  const record = (text: string): LogRecord => ({
    ts: options.ts ?? new Date().toISOString(),
    source: "stdout",
    phase: "build",
    text,
  });
  let ms = Date.now();
  const key = logStreamKey(jobId);
  const nextId = () => `${++ms}-0`;
  // Line numbers (`n`) as the runner writes them, unless a test wants entries without.
  let line = 0;
  const number = (count: number): number | undefined => {
    const n = line;
    line += count;
    return options.numbered === false ? undefined : n;
  };
  return {
    async append(...texts: string[]): Promise<{ id: string; cursors: string[] }> {
      const id = nextId();
      await redis.xadd(key, id, encodeEntryFields(texts.map(record), number(texts.length)));
      return { id, cursors: texts.map((_, i) => formatCursor(id, i)) };
    },
    /** One entry whose lines have their own sources (stderr, system lines). */
    async appendLines(
      lines: readonly {
        readonly text: string;
        readonly source?: LogSource;
        readonly step?: StepMark;
      }[],
    ): Promise<{ id: string; cursors: string[] }> {
      const id = nextId();
      await redis.xadd(
        key,
        id,
        encodeEntryFields(
          lines.map((line) => ({
            ...record(line.text),
            source: line.source ?? "stdout",
            ...(line.step === undefined ? {} : { step: line.step }),
          })),
          number(lines.length),
        ),
      );
      return { id, cursors: lines.map((_, i) => formatCursor(id, i)) };
    },
    async end(
      status: TerminalStatus,
      ...texts: string[]
    ): Promise<{ id: string; cursors: string[] }> {
      const id = nextId();
      await redis.xadd(key, id, encodeEndFields(status, texts.map(record), number(texts.length)));
      return { id, cursors: texts.map((_, i) => formatCursor(id, i)) };
    },
  };
}
