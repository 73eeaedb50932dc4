import type { Redis } from "@upstash/redis/cloudflare";
import { jobsCreatedKey } from "../shared/keys.ts";

/** How many jobs one user may create per window, and the window. */
export interface CreationRateLimit {
  readonly limit: number;
  readonly windowSeconds: number;
}

export type CreationVerdict =
  | { readonly allowed: true }
  | { readonly allowed: false; readonly retryAfterSeconds: number };

/**
 * Counts a job creation against the user's rate limit: a sliding window estimated from two
 * fixed windows (the previous one weighted by how much of it still overlaps), so a burst at
 * a window's edge does not get twice the limit. One round trip of 3 commands (INCR, PEXPIRE NX,
 * GET) when allowed; a refusal takes its count back with one DECR, so a client retrying in a
 * loop does not lock itself out for longer.
 *
 * Hand-written rather than @upstash/ratelimit: its Lua scripts carry an Upstash-only shebang
 * flag (`allow-key-locking`) that stock Redis 7.0, which every test here runs on, refuses.
 */
export async function countJobCreation(
  redis: Redis,
  userId: string,
  rule: CreationRateLimit,
  now: number = Date.now(),
): Promise<CreationVerdict> {
  const windowMs = rule.windowSeconds * 1000;
  const window = Math.floor(now / windowMs);
  const elapsed = (now % windowMs) / windowMs;
  const currentKey = jobsCreatedKey(userId, window);
  const p = redis.pipeline();
  p.incr(currentKey);
  p.pexpire(currentKey, windowMs * 2, "NX");
  p.get<string>(jobsCreatedKey(userId, window - 1));
  const [current, , previousText] = (await p.exec()) as [number, number, string | null];
  const previous = Number(previousText ?? 0);
  if (previous * (1 - elapsed) + current <= rule.limit) return { allowed: true };
  await redis.decr(currentKey);
  return {
    allowed: false,
    retryAfterSeconds: secondsUntilAllowed(previous, current - 1, elapsed, rule),
  };
}

/**
 * When one more creation fits: within this window once the previous window's weight has
 * fallen far enough, else in the next window once this one's has.
 */
export function secondsUntilAllowed(
  previous: number,
  current: number,
  elapsed: number,
  rule: CreationRateLimit,
): number {
  const room = rule.limit - 1;
  let windows: number;
  if (current <= room && previous > 0) {
    windows = 1 - (room - current) / previous - elapsed;
  } else {
    windows = 1 - elapsed + (current > 0 ? Math.max(0, 1 - room / current) : 0);
  }
  return Math.max(1, Math.ceil(windows * rule.windowSeconds));
}
