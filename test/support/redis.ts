import type { Redis } from "@upstash/redis";
import { decodeStreamReply, type LogLine } from "../../src/shared/entry.ts";
import { logStreamKey } from "../../src/shared/keys.ts";

/** A job id no other test uses, so tests share one Redis without touching each other's keys. */
export function uniqueJobId(label: string): string {
  return `t-${label}-${crypto.randomUUID().slice(0, 8)}`.slice(0, 64);
}

/** Every line of a job's stream, read back with XRANGE. */
export async function readLogLines(redis: Redis, jobId: string): Promise<LogLine[]> {
  const reply: unknown = await redis.xrange(logStreamKey(jobId), "-", "+");
  return decodeStreamReply(reply).flatMap((entry) => entry.lines);
}
