import { Redis } from "@upstash/redis";

export interface UpstashSettings {
  readonly url: string;
  readonly token: string;
}

/**
 * The Upstash client the runner writes with. Values are read back as the strings they are
 * (automaticDeserialization would turn a log line "42" into a number), and the client's own
 * retry is off because the writer retries with its own backoff and keeps the lines meanwhile.
 */
export function createUpstashClient(settings: UpstashSettings): Redis {
  return new Redis({
    url: settings.url,
    token: settings.token,
    automaticDeserialization: false,
    // `retry: false` still makes a second attempt at once; zero retries is one attempt.
    retry: { retries: 0 },
    enableTelemetry: false,
    enableAutoPipelining: false,
  });
}
