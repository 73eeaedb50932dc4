import { Redis } from "@upstash/redis/cloudflare";
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
