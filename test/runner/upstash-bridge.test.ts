import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import net from "node:net";
import { fileURLToPath } from "node:url";
import type { RedisConfigNodejs } from "@upstash/redis";
import { errors, Redis } from "@upstash/redis";
import { afterAll, beforeAll, beforeEach, describe, expect, it, vi } from "vitest";
import type { UpstashBridge } from "../../tools/upstash-bridge/bridge.ts";
import { startUpstashBridge } from "../../tools/upstash-bridge/bridge.ts";
import type { RedisServerHandle } from "../../tools/upstash-bridge/redis-server.ts";
import { startRedisServer } from "../../tools/upstash-bridge/redis-server.ts";

const TOKEN = "test-token-d41d8cd98f00b204";

let server: RedisServerHandle;
let bridge: UpstashBridge;
/** The client as the app uses it: auto-pipelining, base64 responses, automatic deserialization. */
let redis: Redis;
/** Values come back exactly as stored. */
let rawRedis: Redis;
/** One command per request on POST /, and no retry loop to hide faults. */
let direct: Redis;

function client(options: Partial<RedisConfigNodejs> = {}): Redis {
  return new Redis({ url: bridge.url, token: TOKEN, enableTelemetry: false, ...options });
}

interface WireAnswer {
  readonly status: number;
  readonly headers: Headers;
  readonly text: string;
  readonly json: unknown;
}

/** A raw HTTP request to the bridge, to check what goes over the wire. */
async function post(
  path: string,
  body: unknown,
  headers: Record<string, string> = {},
): Promise<WireAnswer> {
  const response = await fetch(bridge.url + path, {
    method: "POST",
    headers: { authorization: `Bearer ${TOKEN}`, "content-type": "application/json", ...headers },
    body: typeof body === "string" ? body : JSON.stringify(body),
  });
  const text = await response.text();
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: response.status, headers: response.headers, text, json };
}

async function admin(
  method: "GET" | "POST",
  path: string,
  body?: unknown,
  token = TOKEN,
): Promise<{ status: number; json: unknown }> {
  const response = await fetch(`${bridge.url}/_bridge/${path}`, {
    method,
    headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: response.status, json: await response.json() };
}

async function caught(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (error) {
    return error;
  }
  throw new Error("expected the promise to reject");
}

const b64 = (text: string): string => Buffer.from(text, "utf8").toString("base64");

beforeAll(async () => {
  server = await startRedisServer();
  bridge = await startUpstashBridge({ redisUrl: server.url, token: TOKEN });
  redis = client();
  rawRedis = client({ automaticDeserialization: false });
  direct = client({ enableAutoPipelining: false, retry: false });
});

afterAll(async () => {
  await bridge?.close();
  await server?.stop();
});

beforeEach(async () => {
  bridge.faults.reset();
  await direct.flushdb();
  bridge.resetStats();
});

describe("values through @upstash/redis", () => {
  it("round-trips unicode text", async () => {
    const text = "héllo wörld ✓ 🚀 日本語 \u0000 tab\tnewline\n";
    expect(await redis.set("greeting", text)).toBe("OK");
    expect(await redis.get("greeting")).toBe(text);
    expect(await rawRedis.get("greeting")).toBe(text);
  });

  it("keeps a JSON-looking string a string when deserialization is off", async () => {
    await redis.set("doc", '{"line":"42","ok":true}');
    await redis.set("number-like", "42");
    expect(await rawRedis.get("doc")).toBe('{"line":"42","ok":true}');
    expect(await rawRedis.get("number-like")).toBe("42");
    // The default client parses it: the reason the app turns deserialization off.
    expect(await redis.get("doc")).toEqual({ line: "42", ok: true });
    expect(await redis.get("number-like")).toBe(42);
  });

  it("returns integers as numbers and a missing key as null", async () => {
    expect(await redis.incr("counter")).toBe(1);
    expect(await rawRedis.incrby("counter", 41)).toBe(42);
    expect(await redis.get("missing")).toBeNull();
    expect(await rawRedis.get("missing")).toBeNull();
    expect(await direct.get("missing")).toBeNull();
  });

  it("works without base64 responses (responseEncoding: false)", async () => {
    const plain = client({ responseEncoding: false, automaticDeserialization: false });
    await plain.set("plain", "naïve ✓");
    expect(await plain.get("plain")).toBe("naïve ✓");
    await plain.xadd("plain-stream", "1-1", { line: "ünïcode" });
    expect(await plain.xrange("plain-stream", "-", "+")).toEqual([["1-1", ["line", "ünïcode"]]]);
  });

  it("writes and reads streams: xadd, xrange, xrevrange, xlen", async () => {
    const first = await rawRedis.xadd("job:1:logs", "*", { seq: "1", line: "npm install" });
    const second = await rawRedis.xadd("job:1:logs", "*", { seq: "2", line: '{"not":"parsed"}' });
    expect(first).toMatch(/^\d+-\d+$/);
    expect(await rawRedis.xlen("job:1:logs")).toBe(2);
    // Without deserialization the client hands over Redis's nested arrays untouched.
    expect(await rawRedis.xrange("job:1:logs", "-", "+")).toEqual([
      [first, ["seq", "1", "line", "npm install"]],
      [second, ["seq", "2", "line", '{"not":"parsed"}']],
    ]);
    expect(await rawRedis.xrevrange("job:1:logs", "+", "-", 1)).toEqual([
      [second, ["seq", "2", "line", '{"not":"parsed"}']],
    ]);
    expect(await rawRedis.xrange("job:1:logs", `(${first}`, "+")).toEqual([
      [second, ["seq", "2", "line", '{"not":"parsed"}']],
    ]);
    // With it, entries become objects keyed by ID, and values are JSON-parsed.
    expect(await redis.xrange("job:1:logs", "-", "+")).toEqual({
      [first]: { seq: 1, line: "npm install" },
      [second]: { seq: 2, line: { not: "parsed" } },
    });
    expect(Object.keys(await redis.xrevrange("job:1:logs", "+", "-"))).toEqual([second, first]);
  });

  it("returns a hash as Redis's flat list, which the default client turns into an object", async () => {
    await rawRedis.hset("hash", { a: "1", b: "two" });
    expect(await rawRedis.hgetall("hash")).toEqual(["a", "1", "b", "two"]);
    expect(await redis.hgetall("hash")).toEqual({ a: 1, b: "two" });
  });
});

describe("pipelines and transactions", () => {
  it("runs a pipeline in order and reports each command's error", async () => {
    await redis.set("text", "not a number");
    const pipeline = rawRedis.pipeline();
    pipeline.set("k", "v1");
    pipeline.incr("text");
    pipeline.append("k", "+more");
    pipeline.get("k");
    const results = await pipeline.exec({ keepErrors: true });
    expect(results).toEqual([
      { result: "OK", error: undefined },
      { result: undefined, error: expect.stringMatching(/^ERR value is not an integer/) },
      { result: 7, error: undefined },
      { result: "v1+more", error: undefined },
    ]);
  });

  it("makes a pipeline with a failed command reject without keepErrors", async () => {
    await redis.set("text", "not a number");
    const pipeline = redis.pipeline();
    pipeline.set("k", "v");
    pipeline.incr("text");
    const error = await caught(pipeline.exec());
    expect(error).toBeInstanceOf(errors.UpstashError);
    expect(await rawRedis.get("k")).toBe("v");
  });

  it("runs multi() as a transaction with per-command errors", async () => {
    await redis.set("text", "not a number");
    const transaction = rawRedis.multi();
    transaction.set("k", "v");
    transaction.incr("text");
    transaction.get("k");
    transaction.xadd("tx-stream", "1-1", { a: "b" });
    transaction.xrange("tx-stream", "-", "+");
    const results = await transaction.exec({ keepErrors: true });
    expect(results).toEqual([
      { result: "OK", error: undefined },
      { result: undefined, error: expect.stringMatching(/^ERR value is not an integer/) },
      { result: "v", error: undefined },
      { result: "1-1", error: undefined },
      { result: [["1-1", ["a", "b"]]], error: undefined },
    ]);
  });

  it("discards a whole transaction when Redis refuses a command at queue time", async () => {
    const answer = await post("/multi-exec", [["set", "queued", "v"], ["get"]]);
    expect(answer.status).toBe(400);
    expect(answer.json).toEqual({
      error: expect.stringMatching(/^EXECABORT .*wrong number of arguments/),
    });
    expect(await rawRedis.get("queued")).toBeNull();
  });
});

describe("errors", () => {
  it("surfaces a failed single command as UpstashError (HTTP 400 {error})", async () => {
    await direct.set("text", "not a number");
    const error = await caught(direct.incr("text"));
    expect(error).toBeInstanceOf(errors.UpstashError);
    expect(String(error)).toMatch(/ERR value is not an integer/);

    const answer = await post("/", ["incr", "text"]);
    expect(answer.status).toBe(400);
    expect(answer.json).toEqual({ error: expect.stringMatching(/^ERR value is not an integer/) });
  });

  it("answers 401 {error} to a wrong or missing token and executes nothing", async () => {
    const wrong = client({ token: "wrong-token", retry: false, enableAutoPipelining: false });
    expect(await caught(wrong.set("k", "v"))).toBeInstanceOf(errors.UpstashError);

    const badToken = await post("/", ["set", "k", "v"], { authorization: "Bearer wrong-token" });
    expect(badToken.status).toBe(401);
    expect(badToken.json).toEqual({ error: expect.any(String) });

    const response = await fetch(bridge.url, {
      method: "POST",
      body: JSON.stringify(["set", "k", "v"]),
    });
    expect(response.status).toBe(401);
    expect(await response.json()).toEqual({ error: expect.any(String) });

    const pipeline = await post("/pipeline", [["set", "k", "v"]], { authorization: "Basic abc" });
    expect(pipeline.status).toBe(401);
    expect(bridge.stats.commands).toBe(0);
    expect(await rawRedis.get("k")).toBeNull();
  });

  it.each([
    ["/", "not json"],
    ["/", '{"cmd":"get"}'],
    ["/", "[]"],
    ["/", '[""]'],
    ["/", "[42]"],
    ["/", '["set","k",true]'],
    ["/", '["set","k",null]'],
    ["/", '["set","k",{"a":1}]'],
    ["/", '[["get","k"]]'],
    ["/pipeline", '["get","k"]'],
    ["/pipeline", "[]"],
    ["/pipeline", '[["set","k","v"],"get"]'],
    ["/pipeline", '[["set","k","v"],[]]'],
    ["/multi-exec", '[["set","k",["nested"]]]'],
  ])("answers 400 {error} to a malformed body on %s: %s", async (path, body) => {
    const answer = await post(path, body);
    expect(answer.status).toBe(400);
    expect(answer.json).toEqual({ error: expect.any(String) });
    expect(bridge.stats.commands).toBe(0);
    expect(await rawRedis.get("k")).toBeNull();
  });

  it("accepts numbers as arguments", async () => {
    const answer = await post("/", ["set", "n", 12.5]);
    expect(answer.json).toEqual({ result: "OK" });
    expect(await rawRedis.get("n")).toBe("12.5");
  });

  it("answers 413 to a body over 10 MB", async () => {
    const answer = await post("/", ["set", "big", "x".repeat(10 * 1024 * 1024)]);
    expect(answer.status).toBe(413);
    expect(answer.json).toEqual({ error: expect.any(String) });
    expect(await rawRedis.exists("big")).toBe(0);
  });

  it("rejects blocking commands with 400 and executes nothing of the request", async () => {
    const error = await caught(rawRedis.xread("job:1:logs", "$", { blockMS: 1000 }));
    expect(error).toBeInstanceOf(errors.UpstashError);
    expect(String(error)).toMatch(/blocking/);

    for (const command of [
      ["blpop", "queue", 0],
      ["brpop", "queue", "0"],
      ["blmove", "a", "b", "LEFT", "LEFT", 0],
      ["bzpopmin", "z", 0],
      ["wait", 1, 0],
      ["xreadgroup", "GROUP", "g", "c", "BLOCK", 0, "STREAMS", "s", ">"],
      ["subscribe", "channel"],
      ["monitor"],
    ]) {
      const answer = await post("/", command);
      expect(answer.status, JSON.stringify(command)).toBe(400);
      expect(answer.json).toEqual({ error: expect.any(String) });
    }
    const pipeline = await post("/pipeline", [
      ["set", "k", "v"],
      ["blpop", "queue", 0],
    ]);
    expect(pipeline.status).toBe(400);
    expect(await rawRedis.get("k")).toBeNull();
  });

  it("still runs a non-blocking XREAD, even on a stream named block", async () => {
    await rawRedis.xadd("block", "1-1", { a: "b" });
    expect(await rawRedis.xread("block", "0")).toEqual([["block", [["1-1", ["a", "b"]]]]]);
  });
});

describe("wire format (what Upstash answers)", () => {
  it("base64-encodes every string at every depth except a top-level OK; integers and null stay raw", async () => {
    await rawRedis.xadd("s", "1-1", { line: "héllo" });
    const answer = await post(
      "/pipeline",
      [
        ["set", "k", "ÿ"],
        ["get", "k"],
        ["incrby", "big", "9007199254740993"],
        ["get", "missing"],
        ["xrange", "s", "-", "+"],
        ["ping"],
        ["incr", "k"],
      ],
      { "upstash-encoding": "base64" },
    );
    expect(answer.status).toBe(200);
    expect(answer.json).toEqual([
      { result: "OK" },
      { result: b64("ÿ") },
      { result: 9007199254740992 },
      { result: null },
      { result: [[b64("1-1"), [b64("line"), b64("héllo")]]] },
      { result: b64("PONG") },
      { error: expect.stringMatching(/^ERR value is not an integer/) },
    ]);
    // Integers are written from Redis's digits, not rounded through a JS number.
    expect(answer.text).toContain('{"result":9007199254740993}');
    expect(answer.headers.get("upstash-sync-token")).toEqual(expect.any(String));
  });

  it("answers plain strings without the Upstash-Encoding header", async () => {
    await post("/", ["set", "k", "ÿ ✓"]);
    expect((await post("/", ["get", "k"])).json).toEqual({ result: "ÿ ✓" });
    expect((await post("/", ["ping"])).json).toEqual({ result: "PONG" });
  });
});

describe("stats", () => {
  it("counts a pipeline of 3 as 1 request and 3 commands", async () => {
    const pipeline = rawRedis.pipeline();
    pipeline.set("a", "1");
    pipeline.incr("a");
    pipeline.get("a");
    await pipeline.exec();
    expect(bridge.stats).toEqual({ requests: 1, commands: 3 });

    await direct.get("a");
    expect(bridge.stats).toEqual({ requests: 2, commands: 4 });
    expect((await admin("GET", "stats")).json).toEqual({ requests: 2, commands: 4 });
    expect(bridge.commandCounts).toEqual({ SET: 1, INCR: 1, GET: 2 });
    bridge.resetStats();
    expect(bridge.commandCounts).toEqual({});
  });

  it("resets stats in process and over HTTP; admin requests are not counted", async () => {
    await direct.set("a", "1");
    bridge.resetStats();
    expect(bridge.stats).toEqual({ requests: 0, commands: 0 });
    await direct.set("a", "2");
    expect((await admin("POST", "stats/reset")).status).toBe(200);
    expect((await admin("GET", "stats")).json).toEqual({ requests: 0, commands: 0 });
    expect(bridge.stats).toEqual({ requests: 0, commands: 0 });
  });
});

describe("faults", () => {
  it("adds latency before answering, as the bridge measures it", async () => {
    bridge.faults.latencyMs = 40;
    expect(await direct.set("k", "v")).toBe("OK");
    expect(bridge.faultStats.delayedRequests).toBe(1);
    expect(bridge.faultStats.delayMs).toBeGreaterThanOrEqual(40);
    bridge.faults.reset();
    await direct.get("k");
    expect(bridge.faultStats.delayedRequests).toBe(1);
  });

  it("failNext status: answers 503 without executing, then recovers", async () => {
    bridge.faults.failNext(1, "status");
    const error = await caught(direct.set("k", "v"));
    expect(error).toBeInstanceOf(errors.UpstashError);
    expect(bridge.stats).toEqual({ requests: 1, commands: 0 });
    expect(await direct.get("k")).toBeNull();
    expect(await direct.set("k", "v")).toBe("OK");
    expect(bridge.faultStats.failures).toBe(1);
  });

  it("failNext reset: the client sees a network error and nothing is executed", async () => {
    // retry: false still makes two attempts (the client loops 0..attempts), so fail both.
    bridge.faults.failNext(2, "reset");
    const error = await caught(direct.incr("counter"));
    expect(error).toBeInstanceOf(Error);
    expect(error).not.toBeInstanceOf(errors.UpstashError);
    expect(bridge.stats).toEqual({ requests: 2, commands: 0 });
    expect(await direct.get("counter")).toBeNull();
  });

  it("failNext reset: a retrying client gets through, and the command runs once", async () => {
    const retrying = client({
      enableAutoPipelining: false,
      retry: { retries: 5, backoff: () => 5 },
    });
    bridge.faults.failNext(3, "reset");
    expect(await retrying.incr("counter")).toBe(1);
    expect(bridge.stats).toEqual({ requests: 4, commands: 1 });
    expect(bridge.faultStats.failures).toBe(3);
  });

  it("failNext after-exec: the client sees an error although Redis executed the command", async () => {
    bridge.faults.failNext(2, "after-exec");
    const error = await caught(direct.incr("counter"));
    expect(error).toBeInstanceOf(Error);
    expect(error).not.toBeInstanceOf(errors.UpstashError);
    // Both attempts ran: the double write a blind retry causes.
    expect(await direct.get("counter")).toBe(2);
    expect(bridge.stats.commands).toBe(3);
  });

  it("failNext queues modes in order", async () => {
    bridge.faults.failNext(1, "status");
    bridge.faults.failNext(2, "after-exec");
    expect((await post("/", ["incr", "counter"])).status).toBe(503);
    expect(await caught(post("/", ["incr", "counter"]))).toBeInstanceOf(Error);
    expect(await caught(post("/", ["incr", "counter"]))).toBeInstanceOf(Error);
    expect((await post("/", ["incr", "counter"])).json).toEqual({ result: 3 });
  });

  it("outage: every request fails until it ends; the admin interface keeps working", async () => {
    bridge.faults.outage(60_000);
    expect(await caught(direct.set("k", "v"))).not.toBeInstanceOf(errors.UpstashError);
    expect(await caught(post("/pipeline", [["set", "k", "v"]]))).toBeInstanceOf(Error);
    const during = await admin("GET", "faults");
    expect(during.json).toMatchObject({ outageRemainingMs: expect.any(Number) });
    expect((during.json as { outageRemainingMs: number }).outageRemainingMs).toBeGreaterThan(0);
    expect(bridge.stats.commands).toBe(0);

    bridge.faults.outage(0);
    expect(await direct.set("k", "v")).toBe("OK");
    expect(await direct.get("k")).toBe("v");
  });

  it("outage: a retrying client rides out a short outage", async () => {
    const retrying = client({
      enableAutoPipelining: false,
      retry: { retries: 200, backoff: () => 10 },
    });
    bridge.faults.outage(100);
    expect(await retrying.incr("counter")).toBe(1);
    expect(bridge.faultStats.failures).toBeGreaterThan(0);
    expect(bridge.stats.commands).toBe(1);
  });

  it("rejects invalid fault settings in process", () => {
    expect(() => {
      bridge.faults.latencyMs = -1;
    }).toThrow(RangeError);
    expect(() => bridge.faults.failNext(1.5)).toThrow(RangeError);
    expect(() => bridge.faults.outage(Number.NaN)).toThrow(RangeError);
  });
});

describe("admin HTTP interface", () => {
  it("arms faults, reports them and resets them", async () => {
    const armed = await admin("POST", "faults", {
      latencyMs: 5,
      failNext: { count: 1, mode: "status" },
    });
    expect(armed.status).toBe(200);
    expect(armed.json).toMatchObject({
      latencyMs: 5,
      pendingFailures: [{ mode: "status", count: 1 }],
      outageRemainingMs: 0,
    });
    expect((await post("/", ["set", "k", "v"])).status).toBe(503);
    expect((await post("/", ["set", "k", "v"])).json).toEqual({ result: "OK" });
    const report = await admin("GET", "faults");
    expect(report.json).toMatchObject({ injected: { failures: 1, delayedRequests: 2 } });

    const cleared = await admin("POST", "faults", { reset: true });
    expect(cleared.json).toMatchObject({ latencyMs: 0, pendingFailures: [], outageRemainingMs: 0 });
    expect(bridge.faults.latencyMs).toBe(0);
  });

  it("arms failNext reset and an outage over HTTP", async () => {
    await admin("POST", "faults", { failNext: { count: 1, mode: "reset" } });
    expect(await caught(post("/", ["set", "k", "v"]))).toBeInstanceOf(Error);
    await admin("POST", "faults", { outageMs: 60_000 });
    expect(await caught(post("/", ["set", "k", "v"]))).toBeInstanceOf(Error);
    await admin("POST", "faults", { reset: true });
    expect((await post("/", ["get", "k"])).json).toEqual({ result: null });
  });

  it("checks the token and the body", async () => {
    expect((await admin("GET", "stats", undefined, "wrong")).status).toBe(401);
    expect((await admin("POST", "faults", { reset: true }, "wrong")).status).toBe(401);
    expect((await admin("POST", "faults", { latencyMs: -5 })).status).toBe(400);
    expect(
      (await admin("POST", "faults", { failNext: { count: 1, mode: "explode" } })).status,
    ).toBe(400);
    expect((await admin("POST", "faults", { surprise: 1 })).status).toBe(400);
    expect((await admin("GET", "nothing-here")).status).toBe(404);
    expect((await admin("GET", "stats/reset")).status).toBe(405);
    expect(bridge.stats).toEqual({ requests: 0, commands: 0 });
  });
});

describe("startUpstashBridge options", () => {
  it("throws at once on a missing token or a bad redisUrl", async () => {
    await expect(startUpstashBridge({ redisUrl: server.url, token: "" })).rejects.toThrow(
      TypeError,
    );
    await expect(
      startUpstashBridge({ redisUrl: "http://127.0.0.1:6379", token: TOKEN }),
    ).rejects.toThrow(TypeError);
    await expect(startUpstashBridge({ redisUrl: "not a url", token: TOKEN })).rejects.toThrow(
      TypeError,
    );
  });

  it("throws when Redis cannot be reached", async () => {
    const stopped = await startRedisServer();
    await stopped.stop();
    await expect(startUpstashBridge({ redisUrl: stopped.url, token: TOKEN })).rejects.toThrow(
      /cannot connect to Redis/,
    );
  });
});

describe("startRedisServer", () => {
  function accepts(port: number): Promise<boolean> {
    return new Promise((resolve) => {
      const socket = net.connect({ host: "127.0.0.1", port });
      socket.once("connect", () => {
        socket.destroy();
        resolve(true);
      });
      socket.once("error", () => resolve(false));
    });
  }

  it("stops and frees the port", async () => {
    const started = await startRedisServer();
    expect(started.url).toBe(`redis://127.0.0.1:${started.port}`);
    expect(await accepts(started.port)).toBe(true);
    await started.stop();
    await started.stop();
    expect(await accepts(started.port)).toBe(false);
  });

  it("leaves no redis-server behind when the process that started it is killed", async () => {
    // Node >= 22.18 runs the .ts module directly; the repo pins one in node_modules.
    const repoNode = fileURLToPath(new URL("../../node_modules/.bin/node", import.meta.url));
    const moduleUrl = new URL("../../tools/upstash-bridge/redis-server.ts", import.meta.url).href;
    const script = `import { startRedisServer } from ${JSON.stringify(moduleUrl)};
      const started = await startRedisServer();
      console.log(started.port);
      setInterval(() => {}, 60_000);`;
    const child = spawn(
      existsSync(repoNode) ? repoNode : process.execPath,
      ["--input-type=module", "-e", script],
      {
        stdio: ["ignore", "pipe", "inherit"],
      },
    );
    const port = await new Promise<number>((resolve, reject) => {
      child.stdout.once("data", (chunk: Buffer) => resolve(Number(chunk.toString().trim())));
      child.once("exit", (code) =>
        reject(new Error(`the child exited with ${code} before starting redis`)),
      );
    });
    expect(await accepts(port)).toBe(true);
    child.kill("SIGKILL");
    await vi.waitFor(async () => expect(await accepts(port)).toBe(false), {
      timeout: 10_000,
      interval: 50,
    });
  });
  it.each([
    ["aof", "v"],
    ["none", null],
  ] as const)(
    "with persistence %s, keeps %s across a SIGKILL and a restart on the same port",
    async (persistence, expected) => {
      const started = await startRedisServer({ persistence });
      try {
        const bridge = await startUpstashBridge({ redisUrl: started.url, token: TOKEN });
        const client = new Redis({
          url: bridge.url,
          token: TOKEN,
          automaticDeserialization: false,
        });
        await client.set("kept", "v");
        await new Promise((resolve) => setTimeout(resolve, 1_200)); // past the everysec fsync
        const before = started.pid;
        await started.signal("SIGKILL");
        await started.restart();
        expect(started.pid).not.toBe(before);
        await vi.waitFor(async () => expect(await client.get("kept")).toBe(expected), {
          timeout: 10_000,
          interval: 100,
        });
        await bridge.close();
      } finally {
        await started.stop();
      }
    },
  );
});
