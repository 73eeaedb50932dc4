import { Redis } from "@upstash/redis/cloudflare";

/**
 * The Worker's Upstash client. Values come back as the strings the runner wrote
 * (automaticDeserialization would JSON.parse them), and retries are few and quick: a viewer
 * is waiting on this request, and the next poll or page load tries again anyway.
 */
export function createRedis(
  env: Pick<Env, "UPSTASH_REDIS_REST_URL" | "UPSTASH_REDIS_REST_TOKEN">,
): Redis {
  return new Redis({
    url: env.UPSTASH_REDIS_REST_URL,
    token: env.UPSTASH_REDIS_REST_TOKEN,
    automaticDeserialization: false,
    enableTelemetry: false,
    retry: { retries: 2, backoff: (attempt) => 50 * 2 ** attempt },
    // A hung request must not wedge a Durable Object's tail: each request gets 10 s.
    signal: () => AbortSignal.timeout(10_000),
  });
}
