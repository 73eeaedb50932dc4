import { createHash, timingSafeEqual } from "node:crypto";
import type { IncomingMessage, ServerResponse } from "node:http";
import http from "node:http";
import { z } from "zod";
import type { RedisCommand } from "./commands.ts";
import { parseCommandListBody, parseSingleCommandBody } from "./commands.ts";
import type { BridgeFaults, FaultInjector, FaultState, FaultStats } from "./faults.ts";
import { createFaultInjector, FAILURE_MODES } from "./faults.ts";
import type { CommandOutcome, RedisExecutor } from "./redis-executor.ts";
import {
  connectRedisExecutor,
  isRedisUrl,
  RedisUnavailableError,
  redactUrl,
} from "./redis-executor.ts";
import { encodeResult } from "./reply-encoding.ts";

export type { BridgeFaults, FailureMode, FaultState, FaultStats } from "./faults.ts";

/** Counts of API requests (admin requests excluded). */
export interface BridgeStats {
  /** HTTP requests received on the Upstash API, whatever their outcome. */
  requests: number;
  /** Commands sent to Redis, counting each command in a pipeline or transaction. */
  commands: number;
}

export interface UpstashBridge {
  /** `http://HOST:PORT`, to pass as `url` to `new Redis({ url, token })`. */
  readonly url: string;
  readonly token: string;
  readonly port: number;
  /** A snapshot, taken at each read. */
  readonly stats: BridgeStats;
  /**
   * Commands sent to Redis by name (upper case: `XADD`, `EVALSHA`, ...), counted as `stats.commands`
   * is: where a bench's Upstash bill goes. A snapshot; zeroed with the stats.
   */
  readonly commandCounts: Readonly<Record<string, number>>;
  /** What the bridge injected since the last resetStats(), as it observed it. A snapshot. */
  readonly faultStats: FaultStats;
  readonly faults: BridgeFaults;
  /** Zeroes `stats` and `faultStats`. */
  resetStats(): void;
  /** Stops accepting requests, drops open connections and closes the Redis connection. */
  close(): Promise<void>;
}

export interface UpstashBridgeOptions {
  /** `redis://[[user]:password@]host:port[/db]` of the Redis behind the bridge. */
  readonly redisUrl: string;
  /** The bearer token clients must send. */
  readonly token: string;
  /** Default 0: a free port. */
  readonly port?: number;
  /** Default 127.0.0.1. */
  readonly host?: string;
}

/** Upstash's request size limit. */
export const MAX_BODY_BYTES = 10 * 1024 * 1024;
const MAX_ADMIN_BODY_BYTES = 64 * 1024;

const ADMIN_PREFIX = "/_bridge/";
type ApiRoute = "single" | "pipeline" | "transaction";
const API_ROUTES: ReadonlyMap<string, ApiRoute> = new Map([
  ["/", "single"],
  ["/pipeline", "pipeline"],
  ["/multi-exec", "transaction"],
]);

const FaultsRequest = z.strictObject({
  latencyMs: z.number().nonnegative().optional(),
  failNext: z
    .strictObject({ count: z.number().int().nonnegative(), mode: z.enum(FAILURE_MODES).optional() })
    .optional(),
  outageMs: z.number().nonnegative().optional(),
  reset: z.literal(true).optional(),
});

interface Answer {
  readonly status: number;
  readonly body: string;
}

/**
 * Starts an HTTP server that speaks Upstash's REST protocol (what @upstash/redis sends) in front
 * of a real Redis, with fault injection and an admin interface under `/_bridge/` for tests and
 * benchmarks. A dev and test tool: it listens on loopback by default.
 */
export async function startUpstashBridge(options: UpstashBridgeOptions): Promise<UpstashBridge> {
  const { token, redisUrl } = options;
  if (typeof token !== "string" || token === "") {
    throw new TypeError("startUpstashBridge: token is required (a non-empty string)");
  }
  if (!isRedisUrl(redisUrl)) {
    throw new TypeError(
      `startUpstashBridge: redisUrl must be a redis:// or rediss:// URL, got ${JSON.stringify(redactUrl(String(redisUrl)))}`,
    );
  }
  const port = options.port ?? 0;
  if (!Number.isInteger(port) || port < 0 || port > 65_535) {
    throw new RangeError(
      `startUpstashBridge: port must be an integer from 0 to 65535, got ${port}`,
    );
  }
  const host = options.host ?? "127.0.0.1";

  const redis = await connectRedisExecutor(redisUrl);
  const injector = createFaultInjector();
  const tokenDigest = sha256(token);
  const stats: BridgeStats = { requests: 0, commands: 0 };
  let commandCounts = new Map<string, number>();
  let syncToken = 0;

  const isAuthorized = (req: IncomingMessage): boolean => {
    const match = /^Bearer\s+(\S+)\s*$/i.exec(req.headers.authorization ?? "");
    const presented = match?.[1];
    return presented !== undefined && timingSafeEqual(sha256(presented), tokenDigest);
  };

  const handleApi = async (
    req: IncomingMessage,
    res: ServerResponse,
    pathname: string,
  ): Promise<void> => {
    stats.requests++;
    const failure = injector.takeFailure();
    if (failure === "status" || failure === "reset") {
      await injector.delay();
      if (failure === "reset") return resetConnection(req);
      return send(res, {
        status: 503,
        body: errorBody("ERR service unavailable (fault injected by the bridge)"),
      });
    }
    const answer = await answerApi(req, pathname);
    await injector.delay();
    if (failure === "after-exec") return resetConnection(req);
    send(res, answer, { "upstash-sync-token": String(++syncToken) });
  };

  const answerApi = async (req: IncomingMessage, pathname: string): Promise<Answer> => {
    if (!isAuthorized(req))
      return { status: 401, body: errorBody("Unauthorized: missing or invalid bearer token") };
    const route = API_ROUTES.get(pathname);
    if (route === undefined) {
      return {
        status: 404,
        body: errorBody(`ERR unknown endpoint ${pathname}: use POST /, /pipeline or /multi-exec`),
      };
    }
    if (req.method !== "POST")
      return { status: 405, body: errorBody(`ERR ${req.method ?? "?"} is not allowed: use POST`) };
    const raw = await readBody(req, MAX_BODY_BYTES);
    if (raw === undefined)
      return { status: 413, body: errorBody("ERR request body is larger than 10 MB") };
    const json = parseJson(raw);
    if (!json.ok) return { status: 400, body: errorBody("ERR request body is not valid JSON") };
    const parsed =
      route === "single" ? parseSingleCommandBody(json.value) : parseCommandListBody(json.value);
    if (!parsed.ok) return { status: 400, body: errorBody(parsed.error) };
    const base64 = headerValue(req, "upstash-encoding")?.toLowerCase() === "base64";
    try {
      return await execute(route, parsed.commands, base64);
    } catch (error) {
      if (!(error instanceof RedisUnavailableError)) throw error;
      return { status: 503, body: errorBody(`ERR ${error.message}`) };
    }
  };

  const execute = async (
    route: ApiRoute,
    commands: readonly RedisCommand[],
    base64: boolean,
  ): Promise<Answer> => {
    stats.commands += commands.length;
    for (const [name] of commands) {
      const upper = name.toUpperCase();
      commandCounts.set(upper, (commandCounts.get(upper) ?? 0) + 1);
    }
    const [first] = commands;
    if (route === "single" && first !== undefined) {
      const outcome = await redis.run(first);
      return { status: outcome.ok ? 200 : 400, body: outcomeBody(outcome, base64) };
    }
    if (route === "transaction") {
      const transaction = await redis.transaction(commands);
      if (!transaction.ok) return { status: 400, body: errorBody(transaction.error) };
      return {
        status: 200,
        body: `[${transaction.outcomes.map((outcome) => outcomeBody(outcome, base64)).join(",")}]`,
      };
    }
    const outcomes = await redis.pipeline(commands);
    return {
      status: 200,
      body: `[${outcomes.map((outcome) => outcomeBody(outcome, base64)).join(",")}]`,
    };
  };

  const handleAdmin = async (
    req: IncomingMessage,
    res: ServerResponse,
    pathname: string,
  ): Promise<void> => {
    if (!isAuthorized(req))
      return send(res, {
        status: 401,
        body: errorBody("Unauthorized: missing or invalid bearer token"),
      });
    const route = `${req.method ?? ""} ${pathname}`;
    switch (route) {
      case "GET /_bridge/stats":
        return send(res, jsonAnswer(200, { ...stats }));
      case "POST /_bridge/stats/reset":
        resetStats();
        return send(res, jsonAnswer(200, { ...stats }));
      case "GET /_bridge/faults":
        return send(res, jsonAnswer(200, faultReport(injector)));
      case "POST /_bridge/faults":
        return send(res, await applyFaultsRequest(req, injector));
    }
    const known = ["/_bridge/stats", "/_bridge/stats/reset", "/_bridge/faults"].includes(pathname);
    send(
      res,
      known
        ? { status: 405, body: errorBody(`ERR ${req.method ?? "?"} is not allowed on ${pathname}`) }
        : { status: 404, body: errorBody(`ERR unknown admin endpoint ${pathname}`) },
    );
  };

  const resetStats = (): void => {
    stats.requests = 0;
    stats.commands = 0;
    commandCounts = new Map();
    injector.resetStats();
  };

  const server = http.createServer((req, res) => {
    const pathname = new URL(req.url ?? "/", "http://bridge").pathname;
    const handler = pathname.startsWith(ADMIN_PREFIX) ? handleAdmin : handleApi;
    handler(req, res, pathname).catch((error: unknown) => {
      // A client that went away mid-request lands here too; there is nobody left to answer.
      if (res.headersSent || req.socket.destroyed) {
        res.destroy();
        return;
      }
      console.error("[upstash-bridge] unexpected error", error);
      send(res, {
        status: 500,
        body: errorBody(
          `ERR bridge error: ${error instanceof Error ? error.message : String(error)}`,
        ),
      });
    });
  });

  try {
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(port, host, () => {
        server.off("error", reject);
        resolve();
      });
    });
  } catch (error) {
    await redis.close();
    throw error;
  }
  const address = server.address();
  if (address === null || typeof address === "string")
    throw new Error("the bridge did not get a TCP port");
  const boundPort = address.port;
  const urlHost = host.includes(":") ? `[${host}]` : host;

  let closing: Promise<void> | undefined;
  return {
    url: `http://${urlHost}:${boundPort}`,
    token,
    port: boundPort,
    get stats() {
      return { ...stats };
    },
    get commandCounts() {
      return Object.fromEntries(commandCounts);
    },
    get faultStats() {
      return injector.stats();
    },
    faults: injector.faults,
    resetStats,
    close() {
      closing ??= closeAll(server, redis);
      return closing;
    },
  };
}

async function closeAll(server: http.Server, redis: RedisExecutor): Promise<void> {
  const closed = new Promise<void>((resolve) => server.close(() => resolve()));
  server.closeAllConnections();
  await closed;
  await redis.close();
}

async function applyFaultsRequest(req: IncomingMessage, injector: FaultInjector): Promise<Answer> {
  const raw = await readBody(req, MAX_ADMIN_BODY_BYTES);
  if (raw === undefined) return { status: 413, body: errorBody("ERR request body is too large") };
  const json = parseJson(raw);
  if (!json.ok) return { status: 400, body: errorBody("ERR request body is not valid JSON") };
  const request = FaultsRequest.safeParse(json.value);
  if (!request.success)
    return {
      status: 400,
      body: errorBody(`ERR invalid faults request: ${z.prettifyError(request.error)}`),
    };
  const { reset, latencyMs, failNext, outageMs } = request.data;
  const { faults } = injector;
  if (reset === true) faults.reset();
  if (latencyMs !== undefined) faults.latencyMs = latencyMs;
  if (failNext !== undefined) faults.failNext(failNext.count, failNext.mode);
  if (outageMs !== undefined) faults.outage(outageMs);
  return jsonAnswer(200, faultReport(injector));
}

function faultReport(injector: FaultInjector): FaultState & { readonly injected: FaultStats } {
  return { ...injector.state(), injected: injector.stats() };
}

function outcomeBody(outcome: CommandOutcome, base64: boolean): string {
  return outcome.ok
    ? `{"result":${encodeResult(outcome.reply, base64)}}`
    : errorBody(outcome.error);
}

function errorBody(message: string): string {
  return JSON.stringify({ error: message });
}

function jsonAnswer(status: number, value: unknown): Answer {
  return { status, body: JSON.stringify(value) };
}

function send(
  res: ServerResponse,
  answer: Answer,
  headers: Readonly<Record<string, string>> = {},
): void {
  res.writeHead(answer.status, {
    ...headers,
    "content-type": "application/json",
    "content-length": Buffer.byteLength(answer.body),
  });
  res.end(answer.body);
}

// A TCP reset: the client sees a network error, as with a dropped connection.
function resetConnection(req: IncomingMessage): void {
  req.socket.resetAndDestroy();
}

/** The body, or undefined when it is larger than `limit` (it is then read to its end and dropped). */
function readBody(req: IncomingMessage, limit: number): Promise<Buffer | undefined> {
  return new Promise((resolve, reject) => {
    const declared = Number(req.headers["content-length"]);
    let tooLarge = Number.isFinite(declared) && declared > limit;
    const chunks: Buffer[] = [];
    let size = 0;
    req.on("data", (chunk: Buffer) => {
      if (tooLarge) return;
      size += chunk.length;
      if (size > limit) {
        tooLarge = true;
        chunks.length = 0;
      } else {
        chunks.push(chunk);
      }
    });
    req.once("end", () => resolve(tooLarge ? undefined : Buffer.concat(chunks, size)));
    req.once("error", reject);
    req.once("close", () => {
      if (!req.complete)
        reject(new Error("the client closed the connection before sending the whole body"));
    });
  });
}

function parseJson(raw: Buffer): { ok: true; value: unknown } | { ok: false } {
  try {
    return { ok: true, value: JSON.parse(raw.toString("utf8")) as unknown };
  } catch {
    return { ok: false };
  }
}

function headerValue(req: IncomingMessage, name: string): string | undefined {
  const value = req.headers[name];
  return Array.isArray(value) ? value[0] : value;
}

function sha256(value: string): Buffer {
  return createHash("sha256").update(value).digest();
}
