import { Redis } from "ioredis";
import type { RedisCommand } from "./commands.ts";

/** A command's answer: its raw reply (see encodeResult), or the Redis error message. */
export type CommandOutcome =
  | { readonly ok: true; readonly reply: unknown }
  | { readonly ok: false; readonly error: string };

/** A transaction either ran (each command has its outcome) or was discarded as a whole (EXECABORT). */
export type TransactionOutcome =
  | { readonly ok: true; readonly outcomes: readonly CommandOutcome[] }
  | { readonly ok: false; readonly error: string };

/** Redis could not be asked (connection down), as opposed to Redis answering with an error. */
export class RedisUnavailableError extends Error {
  override readonly name = "RedisUnavailableError";
}

/** Runs commands on one shared connection; each call's commands are written together, in order. */
export interface RedisExecutor {
  run(command: RedisCommand): Promise<CommandOutcome>;
  pipeline(commands: readonly RedisCommand[]): Promise<CommandOutcome[]>;
  transaction(commands: readonly RedisCommand[]): Promise<TransactionOutcome>;
  close(): Promise<void>;
}

const CONNECT_TIMEOUT_MS = 5_000;

export async function connectRedisExecutor(redisUrl: string): Promise<RedisExecutor> {
  let connected = false;
  let lastError: Error | undefined;
  const redis = new Redis(redisUrl, {
    lazyConnect: true,
    // RESP2 reply shapes are Upstash's: flat HGETALL, scores as strings.
    protocol: 2,
    // Integers then arrive as digit strings, told apart from strings (Buffers) and never rounded.
    stringNumbers: true,
    connectTimeout: CONNECT_TIMEOUT_MS,
    // A write that may have reached Redis before a disconnect must not run a second time.
    autoResendUnfulfilledCommands: false,
    maxRetriesPerRequest: 1,
    // Fail fast at startup; once connected, reconnect after a Redis restart.
    retryStrategy: (attempt: number) => (connected ? Math.min(attempt * 100, 2_000) : null),
  });
  redis.on("error", (error: Error) => {
    if (connected && error.message !== lastError?.message) {
      console.warn(`[upstash-bridge] Redis connection error: ${error.message}`);
    }
    lastError = error;
  });
  try {
    await redis.connect();
    connected = true;
  } catch (error) {
    redis.disconnect();
    const cause = lastError ?? error;
    const reason = cause instanceof Error ? cause.message : String(cause);
    throw new Error(`cannot connect to Redis at ${redactUrl(redisUrl)}: ${reason}`, { cause });
  }

  return {
    async run(command) {
      const [name, ...args] = command;
      try {
        return { ok: true, reply: await redis.callBuffer(wireName(name), ...args) };
      } catch (error) {
        return { ok: false, error: replyErrorMessage(error) };
      }
    },
    async pipeline(commands) {
      const pipeline = redis.pipeline();
      for (const [name, ...args] of commands) pipeline.callBuffer(wireName(name), ...args);
      return toOutcomes(await pipeline.exec().catch(rethrowUnavailable));
    },
    async transaction(commands) {
      const multi = redis.multi();
      for (const [name, ...args] of commands) multi.callBuffer(wireName(name), ...args);
      let results: [error: Error | null, reply: unknown][] | null;
      try {
        results = await multi.exec();
      } catch (error) {
        return { ok: false, error: execAbortMessage(error) };
      }
      return { ok: true, outcomes: toOutcomes(results) };
    },
    async close() {
      if (redis.status === "end") return;
      await new Promise<void>((resolve) => {
        redis.once("end", () => resolve());
        redis.disconnect();
      });
    },
  };
}

// ioredis rewrites the replies of some commands by their lower-case name (HGETALL into an
// object, pairs into nested arrays). The bridge must pass Redis's reply through untouched, and
// Redis reads command names in any case, so names are sent upper-case, which no rewrite matches.
function wireName(name: string): string {
  return name.toUpperCase();
}

function toOutcomes(results: [error: Error | null, reply: unknown][] | null): CommandOutcome[] {
  if (results === null) throw new RedisUnavailableError("Redis returned no results for the batch");
  return results.map(([error, reply]) =>
    error === null ? { ok: true, reply } : { ok: false, error: replyErrorMessage(error) },
  );
}

function isReplyError(error: unknown): error is Error {
  return error instanceof Error && error.name === "ReplyError";
}

function replyErrorMessage(error: unknown): string {
  if (isReplyError(error)) return error.message;
  return rethrowUnavailable(error);
}

function rethrowUnavailable(error: unknown): never {
  const reason = error instanceof Error ? error.message : String(error);
  throw new RedisUnavailableError(`Redis is unavailable: ${reason}`, { cause: error });
}

// Redis says only "EXECABORT Transaction discarded because of previous errors."; ioredis keeps
// the errors that caused it, which are what the caller needs to see.
function execAbortMessage(error: unknown): string {
  const message = replyErrorMessage(error);
  const previous =
    error instanceof Error && "previousErrors" in error && Array.isArray(error.previousErrors)
      ? error.previousErrors
      : [];
  const reasons = previous.map((item: unknown) =>
    item instanceof Error ? item.message : String(item),
  );
  return reasons.length === 0 ? message : `${message} ${reasons.join("; ")}`;
}

export function redactUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password !== "") parsed.password = "***";
    return parsed.toString();
  } catch {
    return "(unparsable URL)";
  }
}

/** A redis:// or rediss:// URL with a host: what the bridge accepts as `redisUrl`. */
export function isRedisUrl(value: unknown): value is string {
  if (typeof value !== "string") return false;
  try {
    const url = new URL(value);
    return (url.protocol === "redis:" || url.protocol === "rediss:") && url.hostname !== "";
  } catch {
    return false;
  }
}
