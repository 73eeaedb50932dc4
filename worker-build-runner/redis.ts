import { Redis } from "@upstash/redis";

export interface UpstashSettings {
  readonly url: string;
  readonly token: string;
  /**
   * Each request is abandoned after this long (default 10 s) and its caller retries: without
   * it one half-open connection stalls a log until the kernel gives up (minutes).
   */
  readonly requestTimeoutMs?: number;
}

export const DEFAULT_REDIS_REQUEST_TIMEOUT_MS = 10_000;

/**
 * The Upstash client the runner writes with. Values are read back as the strings they are
 * (automaticDeserialization would turn a log line "42" into a number), and the client's own
 * retry is off because the writer retries with its own backoff and keeps the lines meanwhile.
 */
export function createUpstashClient(settings: UpstashSettings): Redis {
  const timeoutMs = settings.requestTimeoutMs ?? DEFAULT_REDIS_REQUEST_TIMEOUT_MS;
  return new Redis({
    url: settings.url,
    token: settings.token,
    automaticDeserialization: false,
    // `retry: false` still makes a second attempt at once; zero retries is one attempt.
    retry: { retries: 0 },
    enableTelemetry: false,
    enableAutoPipelining: false,
    signal: () => AbortSignal.timeout(timeoutMs),
  });
}
