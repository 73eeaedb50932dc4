import { errors, Redis } from "@upstash/redis/cloudflare";
import { workerConfig } from "./config.ts";
import { exponentialBackoff } from "./shared/backoff.ts";

const redisBackoff = exponentialBackoff({ initial: 50, max: 200 });

/**
 * The Worker's Upstash client. Values come back as the strings the runner wrote
 * (automaticDeserialization would JSON.parse them), and retries are few and quick: a viewer
 * is waiting on this request, and the next poll or page load tries again anyway.
 */
export function createRedis(env: Env): Redis {
  const { url, token } = workerConfig(env).redis;
  return new Redis({
    url,
    token,
    automaticDeserialization: false,
    enableTelemetry: false,
    // The client counts retries from 0.
    retry: { retries: 2, backoff: (retry) => redisBackoff(retry + 1) },
    // A hung request must not wedge a Durable Object's tail: each request gets 10 s.
    signal: () => AbortSignal.timeout(10_000),
  });
}

/**
 * Whether an error means Redis (Upstash) is out of reach: a timeout, a network failure or an
 * error answer from the REST endpoint. Requests that need it answer 503 with Retry-After then,
 * which a client retries, never 500.
 */
export function isRedisUnavailable(error: unknown): boolean {
  if (error instanceof errors.UpstashError || error instanceof errors.UpstashJSONParseError)
    return true;
  if (!(error instanceof Error)) return false;
  if (error.name === "TimeoutError" || error.name === "AbortError") return true;
  // workerd: `Error: Network connection lost.` (remote, retryable); Node: `TypeError: fetch failed`.
  return /network connection lost|fetch failed|connection refused|ECONNREFUSED|ECONNRESET/i.test(
    error.message,
  );
}
