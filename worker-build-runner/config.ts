import type { UpstashSettings } from "./redis.ts";

export class ConfigError extends Error {
  override readonly name = "ConfigError";
  readonly code = "bad_config";
}

type Environment = Readonly<Record<string, string | undefined>>;

/**
 * Reads the runner's Upstash settings from the environment, failing with one message that
 * names every missing or malformed variable.
 */
export function readUpstashSettings(env: Environment = process.env): UpstashSettings {
  const url = env.UPSTASH_REDIS_REST_URL ?? "";
  const token = env.UPSTASH_REDIS_REST_TOKEN ?? "";
  const problems: string[] = [];
  if (url === "") problems.push("UPSTASH_REDIS_REST_URL is not set");
  else if (!/^https?:\/\/[^\s/]+/.test(url)) problems.push(`UPSTASH_REDIS_REST_URL is not an http(s) URL: ${JSON.stringify(url)}`);
  if (token === "") problems.push("UPSTASH_REDIS_REST_TOKEN is not set");
  if (problems.length > 0) throw new ConfigError(`runner configuration: ${problems.join("; ")}`);
  return { url, token };
}
