import type { Redis } from "@upstash/redis";
import { afterAll, afterEach, beforeAll, describe, expect, inject, it } from "vitest";
import {
  CURSOR_PATTERN,
  compareEntryIds,
  decodeStreamReply,
  parseCursor,
} from "../../src/shared/entry.ts";
import { archiveStateKey, logStreamKey } from "../../src/shared/keys.ts";
import { createSecretValues } from "../../src/shared/sanitize/secret-values.ts";
import { startUpstashBridge, type UpstashBridge } from "../../tools/upstash-bridge/bridge.ts";
import { createLogStreamer, type LogStreamer } from "../../worker-build-runner/log-streamer.ts";
import { createUpstashClient } from "../../worker-build-runner/redis.ts";
import {
  createRedisLogWriter,
  type RedisLogWriter,
  type RedisLogWriterOptions,
} from "../../worker-build-runner/redis-writer.ts";
import { readLogLines, uniqueJobId } from "../support/redis.ts";

// The runner's whole write path against a real redis-server, through the Upstash bridge and the
// real @upstash/redis client. This file runs its own bridge so it can inject faults.
let bridge: UpstashBridge;
let redis: Redis;
const warnings: string[] = [];
const logger = { warn: (message: string) => void warnings.push(message) };

beforeAll(async () => {
  bridge = await startUpstashBridge({ redisUrl: inject("redisUrl"), token: "log-streamer-test" });
  redis = createUpstashClient({ url: bridge.url, token: bridge.token });
});

afterAll(async () => {
  await bridge.close();
});

afterEach(() => {
  bridge.faults.reset();
  warnings.length = 0;
});

function setup(
  label: string,
  options: Partial<RedisLogWriterOptions> & { secrets?: string[] } = {},
): { jobId: string; writer: RedisLogWriter; streamer: LogStreamer } {
  const jobId = uniqueJobId(label);
  const { secrets, ...writerOptions } = options;
  const writer = createRedisLogWriter({
    redis,
    jobId,
    logger,
    retryInitialDelayMs: 20,
    retryMaxDelayMs: 200,
    ...writerOptions,
  });
  const streamer = createLogStreamer({
    writer,
    secrets: createSecretValues(secrets ?? []),
    phase: "build",
  });
  return { jobId, writer, streamer };
}

const texts = async (jobId: string): Promise<string[]> =>
  (await readLogLines(redis, jobId)).map((line) => line.text);

/** What a job's stream key holds: its fields' names and values as Redis keeps them. */
async function streamBytes(jobId: string): Promise<number> {
  // Raw (automaticDeserialization: false): [[id, [field, value, ...]], ...].
  const reply = (await redis.xrange(logStreamKey(jobId), "-", "+")) as unknown as [
    string,
    string[],
  ][];
  return reply
    .flatMap(([, fields]) => fields)
    .reduce((sum, text) => sum + Buffer.byteLength(text, "utf8"), 0);
}

describe("buffering into lines", () => {
  it("writes a line split across chunks as one line", async () => {
    const { jobId, streamer } = setup("partial");
    streamer.onStdout("par");
    streamer.onStdout("tial\n");
    await streamer.flush();
    expect(await texts(jobId)).toEqual(["partial"]);
  });

  it("writes an unterminated line on flush()", async () => {
    const { jobId, streamer } = setup("no-newline");
    streamer.onStdout("no-newline");
    await streamer.flush();
    expect(await texts(jobId)).toEqual(["no-newline"]);
  });

  it("buffers stderr apart from stdout", async () => {
    const { jobId, streamer } = setup("separate");
    streamer.onStdout("out-par");
    streamer.onStderr("err-par");
    streamer.onStderr("tial\n");
    streamer.onStdout("tial\n");
    await streamer.flush();
    const lines = await readLogLines(redis, jobId);
    expect(lines.map(({ source, text }) => ({ source, text }))).toEqual([
      { source: "stderr", text: "err-partial" },
      { source: "stdout", text: "out-partial" },
    ]);
  });
});

describe("structured entries", () => {
  it("stores ts, source, phase, text and a cursor per line", async () => {
    const { jobId, streamer } = setup("structured");
    const before = Date.now();
    streamer.setPhase("install");
    streamer.writeEvent("--- Installing dependencies ---");
    streamer.onStdout("added 12 packages\n");
    streamer.setPhase("build");
    streamer.onStderr("warning: big chunk\n");
    await streamer.flush();
    const lines = await readLogLines(redis, jobId);
    expect(lines.map(({ source, phase, text }) => ({ source, phase, text }))).toEqual([
      { source: "system", phase: "install", text: "--- Installing dependencies ---" },
      { source: "stdout", phase: "install", text: "added 12 packages" },
      { source: "stderr", phase: "build", text: "warning: big chunk" },
    ]);
    for (const line of lines) {
      expect(line.ts).toMatch(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/);
      expect(Date.parse(line.ts)).toBeGreaterThanOrEqual(before - 1);
      expect(line.cursor).toMatch(CURSOR_PATTERN);
    }
  });

  it("gives every line a distinct, increasing cursor", async () => {
    const { jobId, streamer } = setup("cursors", { maxEntryLines: 7 });
    for (let i = 0; i < 50; i++) streamer.onStdout(`line ${i}\n`);
    await streamer.flush();
    const lines = await readLogLines(redis, jobId);
    expect(lines.map((line) => line.text)).toEqual(
      Array.from({ length: 50 }, (_, i) => `line ${i}`),
    );
    const cursors = lines.map((line) => parseCursor(line.cursor));
    for (let i = 1; i < cursors.length; i++) {
      const [a, b] = [cursors[i - 1], cursors[i]];
      expect(a && b).toBeTruthy();
      if (!a || !b) continue;
      const order = compareEntryIds(a.entryId, b.entryId);
      expect(order < 0 || (order === 0 && a.index < b.index)).toBe(true);
    }
  });

  it("rejects a phase that is not a plain name", () => {
    const { streamer } = setup("phase");
    expect(() => streamer.setPhase("Build Step!")).toThrow(/invalid phase/);
  });

  it("keeps text that looks like JSON as text", async () => {
    const { jobId, streamer } = setup("json-text");
    streamer.onStdout('42\n{"a":1}\ntrue\nnull\n');
    await streamer.flush();
    expect(await texts(jobId)).toEqual(["42", '{"a":1}', "true", "null"]);
  });
});

describe("sanitizing before anything reaches Redis", () => {
  it("strips ANSI escape sequences", async () => {
    const { jobId, streamer } = setup("ansi");
    streamer.onStdout("\u001b[32m✓\u001b[39m Compiled \u001b[1msuccessfully\u001b[22m\n");
    await streamer.flush();
    expect(await texts(jobId)).toEqual(["✓ Compiled successfully"]);
  });

  it.each([
    ["API_KEY=sk-abc123def456ghi789", "API_KEY=[REDACTED]"],
    ["sk-abcdefghijklmnopqrstuvwxyz", "[REDACTED]"],
    ["postgresql://user:pass@host/db", "[REDACTED]"],
    ["AKIA1234567890ABCDEF", "[REDACTED]"],
  ])("redacts %s", async (raw, expected) => {
    const { jobId, streamer } = setup("redact");
    streamer.onStdout(`${raw}\n`);
    await streamer.flush();
    expect(await texts(jobId)).toEqual([expected]);
  });

  it("masks registered secret values, also base64-encoded, on every stream", async () => {
    const secret = "pr0d-db-passw0rd";
    const { jobId, streamer } = setup("exact", { secrets: [secret] });
    streamer.onStdout(`connecting with ${secret}\n`);
    streamer.onStderr(`echo ${btoa(secret)}\n`);
    streamer.writeEvent(`running: deploy --key ${secret}`);
    await streamer.flush();
    const raw = JSON.stringify(await redis.xrange(logStreamKey(jobId), "-", "+"));
    expect(raw).not.toContain(secret);
    expect(raw).not.toContain(btoa(secret).slice(0, 16));
    expect(await texts(jobId)).toEqual([
      "connecting with [REDACTED]",
      "echo [REDACTED]",
      "running: deploy --key [REDACTED]",
    ]);
  });

  it("truncates long lines and drops blank ones", async () => {
    const { jobId, streamer } = setup("truncate");
    streamer.onStdout(`${"a".repeat(5000)}\n\n   \n\t\nafter\n`);
    await streamer.flush();
    expect(await texts(jobId)).toEqual([`${"a".repeat(2000)}...[truncated]`, "after"]);
  });

  it("collapses carriage-return progress", async () => {
    const { jobId, streamer } = setup("progress");
    streamer.onStdout("[#   ] 25%\r[##  ] 50%\r");
    streamer.onStdout("[####] 100%\r\n");
    await streamer.flush();
    expect(await texts(jobId)).toEqual(["[####] 100%"]);
  });
});

describe("the stream key", () => {
  it("has a 24-hour TTL", async () => {
    const { jobId, streamer } = setup("ttl");
    streamer.onStdout("hello\n");
    await streamer.flush();
    const ttl = await redis.ttl(logStreamKey(jobId));
    expect(ttl).toBeGreaterThan(86_400 - 60);
    expect(ttl).toBeLessThanOrEqual(86_400);
  });

  it("keeps every line live until the archive has it, then its head and tail, and says so", async () => {
    const { jobId, streamer, writer } = setup("trim", { archiveCheckMs: 0, maxLines: 10_000 });
    const burst = async (from: number, count: number) => {
      for (let i = from; i < from + count; i += 1000)
        streamer.onStdout(Array.from({ length: 1000 }, (_, j) => `line ${i + j}\n`).join(""));
      await streamer.flush();
    };
    // 60,000 lines and no archive yet: none leaves Redis.
    await burst(0, 60_000);
    expect(await texts(jobId)).toEqual(Array.from({ length: 60_000 }, (_, i) => `line ${i}`));
    // The archive reaches line ~40,000 (as the Worker's archiver records it).
    const entries = decodeStreamReply(await redis.xrange(logStreamKey(jobId), "-", "+"));
    const through = entries.find((entry) => (entry.firstLine ?? 0) >= 40_000);
    await redis.set(
      archiveStateKey(jobId),
      JSON.stringify({ through: through?.id, lines: 40_000, segments: 4, complete: false }),
    );
    await burst(60_000, 2_000);
    await burst(62_000, 1_000);
    const kept = decodeStreamReply(await redis.xrange(logStreamKey(jobId), "-", "+"));
    const keptTexts = kept.flatMap((entry) => entry.lines).map((line) => line.text);
    // The head (first 1,000) and everything the archive lacks stay; the archived middle went.
    expect(keptTexts.slice(0, 1_000)).toEqual(Array.from({ length: 1_000 }, (_, i) => `line ${i}`));
    expect(keptTexts).not.toContain("line 1000");
    expect(keptTexts).not.toContain("line 39000");
    expect(keptTexts).toContain(`line ${(through?.firstLine ?? 0) + (through?.lines.length ?? 0)}`);
    expect(keptTexts).toContain("line 62999");
    expect(writer.stats.linesTrimmedUnarchived).toBe(0);
    expect(keptTexts.some((text) => /every line is in the archive/.test(text))).toBe(true);
    // Every entry says where it starts: a reader sees the hole and its exact size.
    const head = kept[kept.findIndex((entry) => (entry.firstLine ?? 0) >= 1_000) - 1];
    const afterHole = kept.find((entry) => (entry.firstLine ?? 0) > 1_000);
    expect((head?.firstLine ?? 0) + (head?.lines.length ?? 0)).toBe(1_000);
    expect(afterHole?.firstLine).toBeGreaterThan(40_000);
  });

  it("past its byte cap lets unarchived lines go only with a notice", async () => {
    const { jobId, streamer, writer } = setup("cap", {
      maxLines: 2_000,
      headLines: 100,
      maxLiveBytes: 400_000,
    });
    for (let i = 0; i < 20_000; i += 1000) {
      streamer.onStdout(Array.from({ length: 1000 }, (_, j) => `line ${i + j}\n`).join(""));
      await streamer.flush();
    }
    const lines = await texts(jobId);
    expect(lines).toContain("line 0");
    expect(lines).toContain("line 19999");
    expect(writer.stats.linesTrimmedUnarchived).toBeGreaterThan(0);
    expect(
      lines.some((text) =>
        /\d+ log lines left the live copy before the archive had them/.test(text),
      ),
    ).toBe(true);
  });

  it("keeps the live copy under its byte cap when long lines fill the tail, head and tail kept", async () => {
    // 2,000 lines of 2,000 characters: 4 MB, though under the line caps (100 + 2,000).
    const { jobId, streamer, writer } = setup("cap-long-lines", {
      maxLines: 2_000,
      headLines: 100,
      maxLiveBytes: 400_000,
      maxEntryBytes: 32 * 1024,
    });
    const line = (i: number): string => `line ${i} `.padEnd(2_000, "x");
    for (let i = 0; i < 2_000; i += 100) {
      streamer.onStdout(Array.from({ length: 100 }, (_, j) => `${line(i + j)}\n`).join(""));
      await streamer.flush();
    }
    expect(await streamBytes(jobId)).toBeLessThanOrEqual(400_000 + 32 * 1024);
    const lines = await texts(jobId);
    // The head is a quarter of the cap at most: the first line stays, and the newest.
    expect(lines[0]).toBe(line(0));
    expect(lines).toContain(line(1_999));
    expect(writer.stats.linesTrimmed).toBeGreaterThan(0);
    expect(
      lines.some((text) =>
        /\d+ log lines left the live copy before the archive had them/.test(text),
      ),
    ).toBe(true);
  });

  it("with an archiver, long lines in the tail leave it once archived: the key stays bounded, nothing lost", async () => {
    // 10,000 lines of 2,000 characters (20 MB), all within the tail's 10,000 lines. The archive
    // has everything written whenever it is called.
    const archiver = {
      archive: async () => {
        const top = (await redis.xrevrange(logStreamKey(jobId), "+", "-", 1)) as unknown as [
          string,
        ][];
        return { through: top[0]?.[0] ?? null, more: false, busy: false };
      },
    };
    const { jobId, streamer, writer } = setup("cap-long-lines-archived", {
      maxLines: 10_000,
      headLines: 100,
      maxLiveBytes: 400_000,
      maxEntryBytes: 32 * 1024,
      archiver,
    });
    const line = (i: number): string => `line ${i} `.padEnd(2_000, "x");
    let peak = 0;
    for (let i = 0; i < 10_000; i += 500) {
      streamer.onStdout(Array.from({ length: 500 }, (_, j) => `${line(i + j)}\n`).join(""));
      await streamer.flush();
      peak = Math.max(peak, await streamBytes(jobId));
    }
    // The cap, the slack the archive may take to complete a segment (12 MiB) and a request.
    expect(peak).toBeLessThanOrEqual(400_000 + 16 * 1024 * 1024);
    expect(writer.stats.linesTrimmed).toBeGreaterThan(0);
    expect(writer.stats.linesTrimmedUnarchived).toBe(0);
    const lines = await texts(jobId);
    expect(lines[0]).toBe(line(0));
    expect(lines).toContain(line(9_999));
  });

  it("with an archiver that is down, waits for it only so long, then lets lines go with the notice", async () => {
    let calls = 0;
    const { jobId, streamer, writer } = setup("cap-archive-down", {
      maxLines: 2_000,
      headLines: 100,
      maxLiveBytes: 400_000,
      archiver: {
        archive: async () => {
          calls += 1;
          return null;
        },
        maxHoldMs: 300,
        retryMs: 20,
      },
    });
    for (let i = 0; i < 20_000; i += 1000) {
      streamer.onStdout(Array.from({ length: 1000 }, (_, j) => `line ${i + j}\n`).join(""));
      await streamer.flush();
    }
    const lines = await texts(jobId);
    expect(lines).toContain("line 19999");
    expect(calls).toBeGreaterThan(1);
    expect(writer.stats.archiveCalls).toBe(calls);
    expect(writer.stats.linesTrimmedUnarchived).toBeGreaterThan(0);
    expect(warnings.some((w) => /archive made no progress for 300 ms/.test(w))).toBe(true);
    expect(
      lines.some((text) =>
        /\d+ log lines left the live copy before the archive had them/.test(text),
      ),
    ).toBe(true);
  });

  it("asks a stuck archiver again, and once it answers lets nothing unarchived go", async () => {
    let down = true;
    const { jobId, streamer, writer } = setup("cap-archive-back", {
      maxLines: 2_000,
      headLines: 100,
      maxLiveBytes: 400_000,
      archiver: {
        // Down, then back: it answers with the stream's newest entry archived.
        archive: async () => {
          if (down) return null;
          const top = decodeStreamReply(await redis.xrevrange(logStreamKey(jobId), "+", "-", 1));
          return { through: top[0]?.id ?? null, more: false, busy: false };
        },
        maxHoldMs: 200,
        retryMs: 20,
        stuckRetryMs: 100,
      },
    });
    const burst = async (from: number) => {
      streamer.onStdout(Array.from({ length: 1000 }, (_, j) => `line ${from + j}\n`).join(""));
      await streamer.flush();
    };
    for (let i = 0; i < 20_000; i += 1000) await burst(i);
    expect(warnings.some((w) => /archive made no progress/.test(w))).toBe(true);
    const lostWhileDown = writer.stats.linesTrimmedUnarchived;
    expect(lostWhileDown).toBeGreaterThan(0);
    down = false;
    await new Promise((resolve) => setTimeout(resolve, 150));
    for (let i = 20_000; i < 40_000; i += 1000) await burst(i);
    expect(writer.stats.linesTrimmedUnarchived).toBe(lostWhileDown);
    expect(await texts(jobId)).toContain("line 39999");
  });

  it("says the archive, not Redis, when a build that cannot be paused overflows the buffer while held", async () => {
    // E2B's output cannot be paused: lines held for the archive fill the buffer and the
    // oldest go. The notice must name what held them.
    const { jobId, streamer } = setup("cap-held-drops", {
      maxLines: 2_000,
      headLines: 100,
      maxLiveBytes: 400_000,
      maxBufferedBytes: 300_000,
      archiver: {
        // Busy working, never done: the lines wait.
        archive: async () => {
          await new Promise((resolve) => setTimeout(resolve, 50));
          return { through: null, more: true, busy: false };
        },
        maxHoldMs: 1_500,
      },
    });
    for (let i = 0; i < 40_000; i += 1000) {
      streamer.onStdout(Array.from({ length: 1000 }, (_, j) => `line ${i + j}\n`).join(""));
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    await streamer.flush();
    const lines = await texts(jobId);
    expect(
      lines.some((text) =>
        /^\d+ log lines were dropped here: the build printed them faster than the archive took them/.test(
          text,
        ),
      ),
    ).toBe(true);
    expect(lines.some((text) => /faster than Redis took them/.test(text))).toBe(false);
  });

  it("at the cap with less than a segment unarchived, asks the archive again only after a good part of one", async () => {
    let calls = 0;
    const { jobId, streamer } = setup("cap-caught-up-calls", {
      maxLines: 1_000,
      headLines: 10,
      maxLiveBytes: 400_000,
      archiver: {
        // Archived all but the newest 300 entries (less than a segment, more than the cap).
        archive: async () => {
          calls += 1;
          const top = decodeStreamReply(await redis.xrevrange(logStreamKey(jobId), "+", "-", 300));
          return { through: top.at(-1)?.id ?? null, more: false, busy: false };
        },
      },
    });
    const line = (n: number) => `line ${n} `.padEnd(2_000, "x");
    for (let n = 0; n < 1_000; n += 100) {
      streamer.onStdout(Array.from({ length: 100 }, (_, j) => `${line(n + j)}\n`).join(""));
      await streamer.flush();
    }
    const before = calls;
    // 100 batches of one line each (200 KB): not one archive call per batch.
    for (let n = 1_000; n < 1_100; n++) {
      streamer.onStdout(`${line(n)}\n`);
      await streamer.flush();
    }
    expect(calls - before).toBeLessThan(10);
    expect(await texts(jobId)).toContain(line(1_099));
  });

  it("counts the cap in UTF-8 bytes, as Redis holds them: CJK text stays within it too", async () => {
    const { jobId, streamer } = setup("cap-utf8", {
      maxLines: 100_000,
      headLines: 10,
      maxLiveBytes: 400_000,
    });
    let peak = 0;
    for (let i = 0; i < 3_000; i += 100) {
      streamer.onStdout(
        Array.from({ length: 100 }, (_, j) => `${i + j} ${"漢".repeat(1_000)}\n`).join(""),
      );
      await streamer.flush();
      peak = Math.max(peak, await streamBytes(jobId));
    }
    // Within the cap and one request's worth (a batch may take it past before the next trims).
    expect(peak).toBeLessThan(400_000 + 310_000);
  });

  it("with an archiver that has written all it can, goes past the cap rather than wait or lose lines", async () => {
    // Nothing complete to archive (as when less than a segment is past the archive's end):
    // waiting would never end, so the lines go, and nothing unarchived leaves the live copy.
    const { jobId, streamer, writer } = setup("cap-archive-caught-up", {
      maxLines: 2_000,
      headLines: 100,
      maxLiveBytes: 400_000,
      archiver: { archive: async () => ({ through: null, more: false, busy: false }) },
    });
    for (let i = 0; i < 20_000; i += 1000) {
      streamer.onStdout(Array.from({ length: 1000 }, (_, j) => `line ${i + j}\n`).join(""));
      await streamer.flush();
    }
    const lines = await texts(jobId);
    expect(lines.filter((text) => text.startsWith("line "))).toEqual(
      Array.from({ length: 20_000 }, (_, i) => `line ${i}`),
    );
    expect(writer.stats.archiveCalls).toBeGreaterThan(0);
    expect(writer.stats.linesTrimmedUnarchived).toBe(0);
  });
});

describe("the end of a log", () => {
  it("follows the last line with the terminal entry and refuses lines after it", async () => {
    const { jobId, streamer, writer } = setup("end");
    streamer.onStdout("last line\n");
    await streamer.flush();
    await writer.end("failed");
    streamer.onStdout("too late\n");
    await streamer.flush();
    const entries = decodeStreamReply(await redis.xrange(logStreamKey(jobId), "-", "+"));
    expect(entries.at(-1)).toMatchObject({ end: "failed", lines: [] });
    expect(entries.flatMap((entry) => entry.lines).map((line) => line.text)).toEqual(["last line"]);
    expect(warnings.some((w) => /after its end/.test(w))).toBe(true);
  });

  it("writes the terminal entry once even when the request carrying it is retried", async () => {
    const { jobId, streamer, writer } = setup("end-retry");
    streamer.onStdout("only line\n");
    await streamer.flush();
    bridge.faults.failNext(1, "after-exec");
    await writer.end("ready");
    const entries = decodeStreamReply(await redis.xrange(logStreamKey(jobId), "-", "+"));
    expect(entries.filter((entry) => entry.end !== undefined)).toHaveLength(1);
  });
});

describe("batching", () => {
  it("spends at most 20 Upstash commands on a burst of 1,000 lines", async () => {
    const { jobId, streamer, writer } = setup("burst");
    bridge.resetStats();
    for (let i = 0; i < 1000; i++) streamer.onStdout(`compiling module ${i} of 1000\n`);
    await streamer.flush();
    expect(bridge.stats.commands).toBeLessThanOrEqual(20);
    expect(writer.stats.commands).toBe(bridge.stats.commands);
    expect((await texts(jobId)).length).toBe(1000);
  });
});

describe("Redis faults", () => {
  it("keeps lines through an outage and delivers each once, in order", async () => {
    const { jobId, streamer, writer } = setup("outage");
    const expected: string[] = [];
    for (let i = 0; i < 100; i++) {
      if (i === 30) bridge.faults.outage(400);
      streamer.onStdout(`step ${i}\n`);
      expected.push(`step ${i}`);
      if (i % 10 === 0) await new Promise((resolve) => setTimeout(resolve, 20));
    }
    await streamer.flush();
    expect(await texts(jobId)).toEqual(expected);
    expect(writer.stats.failedRequests).toBeGreaterThan(0);
    expect(writer.stats.linesDropped).toBe(0);
    expect(warnings.some((w) => /failed/.test(w))).toBe(true);
    expect(warnings.some((w) => /back/.test(w))).toBe(true);
  });

  it("does not append twice when a failed request had in fact succeeded", async () => {
    const { jobId, streamer, writer } = setup("after-exec");
    streamer.onStdout("first\n");
    await streamer.flush();
    bridge.faults.failNext(1, "after-exec");
    streamer.onStdout("second\nthird\n");
    await streamer.flush();
    streamer.onStdout("fourth\n");
    await streamer.flush();
    expect(writer.stats.failedRequests).toBe(1);
    expect(await texts(jobId)).toEqual(["first", "second", "third", "fourth"]);
  });

  it("retries HTTP errors and network resets", async () => {
    const { jobId, streamer } = setup("retry");
    bridge.faults.failNext(2, "status");
    streamer.onStdout("a\n");
    await streamer.flush();
    bridge.faults.failNext(2, "reset");
    streamer.onStdout("b\n");
    await streamer.flush();
    expect(await texts(jobId)).toEqual(["a", "b"]);
  });

  it("drops the oldest unsent lines past its bound and says how many", async () => {
    const { jobId, streamer, writer } = setup("overflow", { maxBufferedBytes: 20 * 1024 });
    bridge.faults.outage(300);
    for (let i = 0; i < 1000; i++) streamer.onStdout(`line ${i} ${"x".repeat(20)}\n`);
    await streamer.flush();
    const lines = await texts(jobId);
    expect(writer.stats.linesDropped).toBeGreaterThan(0);
    const notice = lines.find((text) => /lines were dropped/.test(text));
    expect(notice).toBe(
      `${writer.stats.linesDropped} log lines were dropped here: Redis was unreachable for too long to keep them.`,
    );
    // what survived is the newest lines, in order, each once
    const kept = lines.filter((text) => text.startsWith("line "));
    expect(kept.at(-1)).toBe(`line 999 ${"x".repeat(20)}`);
    expect(kept.length + writer.stats.linesDropped).toBe(1000);
    expect(new Set(kept).size).toBe(kept.length);
    expect(warnings.some((w) => /dropping the oldest/.test(w))).toBe(true);
  });

  it("never throws into the build while Redis is down", async () => {
    const { jobId, streamer } = setup("no-throw");
    bridge.faults.outage(200);
    expect(() => {
      for (let i = 0; i < 10; i++) streamer.onStdout(`x ${i}\n`);
    }).not.toThrow();
    await streamer.flush();
    expect((await texts(jobId)).length).toBe(10);
  });

  it("continues after entries another runner wrote, without losing lines", async () => {
    const { jobId, streamer } = setup("takeover");
    const future = `${Date.now() + 60_000}-0`;
    await redis.xadd(logStreamKey(jobId), future, {
      v: "1",
      lines: JSON.stringify([
        { ts: new Date().toISOString(), source: "system", phase: "build", text: "earlier runner" },
      ]),
    });
    streamer.onStdout("mine\n");
    await streamer.flush();
    expect(await texts(jobId)).toEqual(["earlier runner", "mine"]);
  });
});

describe("counting redactions", () => {
  it("hands the counter each family's secrets once per batch of lines, not once per line", async () => {
    const jobId = uniqueJobId("redaction-counts");
    const writer = createRedisLogWriter({ redis, jobId, logger });
    const calls: [string, number][] = [];
    const streamer = createLogStreamer({
      writer,
      secrets: createSecretValues(["registered-value-0042"]),
      countRedactions: (family, count) => void calls.push([family, count]),
    });
    const token = "ghp_0123456789abcdefghijABCDEFGHIJ012345";
    streamer.onStdout(`a ${token}\nb ${token}\nc ${token}\nregistered-value-0042\n`);
    expect(calls).toEqual([
      ["token", 3],
      ["registered-value", 1],
    ]);
    streamer.onStderr(`d ${token}\nplain line\n`);
    streamer.onStdout("nothing secret\n");
    await streamer.flush();
    expect(calls).toEqual([
      ["token", 3],
      ["registered-value", 1],
      ["token", 1],
    ]);
    expect(await texts(jobId)).not.toContain(token);
  });
});
