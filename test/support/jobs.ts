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

const record = (text: string): LogRecord => ({
  ts: new Date().toISOString(),
  source: "stdout",
  phase: "build",
  text,
});

/**
 * Appends entries as the runner does: explicit increasing ids, several lines per entry.
 * Returns the entry ids and every line's cursor.
 */
export function streamWriter(redis: Redis, jobId: string, options: { numbered?: boolean } = {}) {
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
      lines: readonly { readonly text: string; readonly source?: LogSource }[],
    ): Promise<{ id: string; cursors: string[] }> {
      const id = nextId();
      await redis.xadd(
        key,
        id,
        encodeEntryFields(
          lines.map((line) => ({ ...record(line.text), source: line.source ?? "stdout" })),
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
