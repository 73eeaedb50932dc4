import { evictDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { beforeAll, describe, expect, it } from "vitest";
import { r2Store } from "../../src/log/archive-store.ts";
import { archiveLog } from "../../src/log/archiver.ts";
import { readHistory } from "../../src/log/history.ts";
import { ArchiveView, LogReader } from "../../src/log/reader.ts";
import { type Cursor, type LogLine, parseCursor } from "../../src/shared/entry.ts";
import { logStreamKey } from "../../src/shared/keys.ts";
import { restartTailAt } from "../support/job-stream.ts";
import { createJob, endJobRecord, testRedis } from "../support/jobs.ts";
import { auditLines, numberedText, writeNumberedLog } from "../support/numbered-log.ts";
import { uniqueJobId } from "../support/redis.ts";
import { isEvent, linesOf, sseReader } from "../support/sse.ts";
import { testUser } from "../support/worker-client.ts";

// A 150,000-line build, archived in segments while it ran, whose live copy kept only its head
// and tail (the middle trimmed once archived, as the runner does): every reader gets every line
// once and in order, and a hole that is nowhere is announced with its count.
const TOTAL = 150_000;
const PER_ENTRY = 500;
const HEAD_ENTRIES = 10; // lines 0..4,999 stay live
const TAIL_ENTRIES = 100; // the newest 50,000 stay live
const redis = testRedis(env);
const store = r2Store(env.ARCHIVE);
// Signed for an hour: the setup alone takes longer than a session token's minute.
const viewer = testUser("user_large", { exp: Math.floor(Date.now() / 1000) + 3600 });
let jobId = "";
const ids: string[] = [];

interface Page {
  lines: LogLine[];
  has_more: boolean;
  cursors: { before: string | null; after: string | null };
}

/** Every line of an SSE stream until done, with the done event's status. */
async function readStream(response: Response) {
  const stream = sseReader(response);
  const lines: LogLine[] = [];
  let frame = await stream.nextMatching(isEvent);
  while (frame?.event === "log") {
    lines.push(...linesOf(frame));
    frame = await stream.nextMatching(isEvent);
  }
  await stream.cancel();
  return { lines, done: frame?.event === "done" ? frame.data : null };
}

beforeAll(async () => {
  jobId = uniqueJobId("large");
  const job = await createJob(redis, jobId, viewer.id, "running");
  // Written in five bursts; the archive takes each burst's complete segments as it goes.
  const burst = TOTAL / 5;
  let startMs = Date.now();
  for (let from = 0; from < TOTAL; from += burst) {
    const last = from + burst === TOTAL;
    const written = await writeNumberedLog(redis, jobId, burst, {
      from,
      startMs,
      ...(last ? { end: "ready" as const } : {}),
    });
    ids.push(...written);
    startMs = Number(written.at(-1)?.split("-")[0]) + 1;
    if (last) await endJobRecord(redis, job);
    await archiveLog(redis, store, jobId, { maxSegments: 100 });
  }
  // The runner's trim: the archived middle leaves the live copy.
  const middle = ids.slice(HEAD_ENTRIES, ids.length - 1 - TAIL_ENTRIES);
  for (let i = 0; i < middle.length; i += 100)
    await redis.xdel(logStreamKey(jobId), middle.slice(i, i + 100));
}, 300_000);

describe("a 150,000-line build whose middle left Redis", () => {
  it("opens any line by its number: from the archived middle, the head and the tail", async () => {
    for (const line of [0, 4_999, 5_000, 70_123, 99_999, 100_000, 149_999]) {
      const response = await viewer.get(`/api/jobs/${jobId}/logs?line=${line}&limit=3`);
      expect(response.status).toBe(200);
      const page = (await response.json()) as Page;
      const real = page.lines.filter((l) => l.gap === undefined);
      expect(real[0]).toMatchObject({
        n: line,
        text: `line ${String(line).padStart(7, "0")} of the numbered build`,
      });
    }
    expect((await viewer.get(`/api/jobs/${jobId}/logs?line=150000`)).status).toBe(404);
    // A line in the live tail is found by halving the live copy's time span: a few commands.
    const reader = new LogReader(redis, store, jobId);
    const at = await reader.locate(120_456);
    expect(at).not.toBeNull();
    expect(reader.redisCommands).toBeLessThanOrEqual(40);
  });

  it("searches the whole log, the archived middle too, paged and bounded", async () => {
    const hit = async (query: string) =>
      (await (await viewer.get(`/api/jobs/${jobId}/logs/search?${query}`)).json()) as {
        matches: LogLine[];
        next: string | null;
        scanned_lines: number;
        redis_commands: number;
      };
    const found = await hit("q=line 0070123 of");
    expect(found.matches.map((line) => line.n)).toEqual([70_123]);
    expect(found.next).toBeNull();
    expect(found.scanned_lines).toBe(TOTAL);
    // 150,000 lines in entries of 500: Redis reads of up to 64 entries at a time.
    expect(found.redis_commands).toBeLessThanOrEqual(12);
    const many = await hit("q=of the numbered build&limit=100");
    expect(many.matches).toHaveLength(100);
    expect(many.next).toBe(many.matches.at(-1)?.cursor);
  });

  it("is archived whole, in segments", async () => {
    const view = await ArchiveView.open(store, jobId);
    expect(view?.index?.end).toBe("ready");
    expect(view?.index?.lines).toBe(TOTAL);
    // Segments of 10,000 lines, and the terminal entry on its own (it came after the last cut).
    expect(view?.index?.segments.map((segment) => segment.lines)).toEqual([
      ...Array.from({ length: 15 }, () => 10_000),
      0,
    ]);
    const texts: string[] = [];
    for await (const entry of view?.forward(null, null) ?? [])
      for (const line of entry.lines) texts.push(line.text);
    expect(auditLines(texts, TOTAL)).toEqual({
      seen: TOTAL,
      missing: 0,
      duplicated: 0,
      outOfOrder: 0,
    });
    expect(await redis.xlen(logStreamKey(jobId))).toBe(HEAD_ENTRIES + TAIL_ENTRIES + 1);
  });

  it("reads history forward and backward with nothing missing, doubled or out of order", async () => {
    // The whole walk through the reader (real Redis and R2), 300 pages each way; the route
    // serves the same pages (checked on a sample: head, the archived middle, the tail).
    const reader = () => new LogReader(redis, store, jobId);
    const forward: string[] = [];
    const sample: { query: string; lines: LogLine[] }[] = [];
    let after: Cursor = { entryId: "0-0", index: 0 };
    for (let page = 0; ; page++) {
      const { lines, hasMore } = await readHistory(reader(), { after, limit: 500 });
      if (page % 97 === 0) sample.push({ query: `after=${after.entryId}:${after.index}`, lines });
      forward.push(...lines.map((line) => line.text));
      const last = parseCursor(lines.at(-1)?.cursor ?? "");
      if (!hasMore || last === null) break;
      after = last;
    }
    expect(auditLines(forward, TOTAL)).toEqual({
      seen: TOTAL,
      missing: 0,
      duplicated: 0,
      outOfOrder: 0,
    });
    const pages: string[][] = [];
    let before: Cursor | undefined;
    for (let page = 0; ; page++) {
      const { lines, hasMore } = await readHistory(reader(), {
        ...(before === undefined ? {} : { before }),
        limit: 500,
      });
      if (page % 97 === 1 && before !== undefined)
        sample.push({ query: `before=${before.entryId}:${before.index}`, lines });
      pages.unshift(lines.map((line) => line.text));
      const first = parseCursor(lines[0]?.cursor ?? "");
      if (!hasMore || first === null) break;
      before = first;
    }
    expect(auditLines(pages.flat(), TOTAL)).toEqual({
      seen: TOTAL,
      missing: 0,
      duplicated: 0,
      outOfOrder: 0,
    });
    expect(sample.length).toBeGreaterThanOrEqual(6);
    for (const { query, lines } of sample) {
      const page = (await (
        await viewer.get(`/api/jobs/${jobId}/logs?limit=500&${query}`)
      ).json()) as Page;
      expect(page.lines).toEqual(lines);
    }
  }, 300_000);

  it("downloads logs.txt whole", async () => {
    const text = await (await viewer.get(`/api/jobs/${jobId}/logs.txt`)).text();
    const rows: string[] = text.split("\n").filter(Boolean);
    expect(rows).toHaveLength(TOTAL);
    expect(
      auditLines(
        rows.map((row) => row.replace(/^\S+ \S+\s+/, "")),
        TOTAL,
      ),
    ).toEqual({
      seen: TOTAL,
      missing: 0,
      duplicated: 0,
      outOfOrder: 0,
    });
  }, 60_000);

  it("resumes a viewer from the head across the hole: the archive's lines, announced", async () => {
    const { lines, done } = await readStream(
      await viewer.stream(jobId, { lastEventId: `${ids[0]}:10` }),
    );
    expect(
      auditLines(
        lines.map((line) => line.text),
        TOTAL,
        11,
      ),
    ).toEqual({
      seen: TOTAL - 11,
      missing: 0,
      duplicated: 0,
      outOfOrder: 0,
    });
    const notices = lines.filter((line) => line.gap !== undefined);
    expect(notices.map((line) => line.gap)).toEqual([
      { lines: TOTAL - (HEAD_ENTRIES + TAIL_ENTRIES) * PER_ENTRY, where: "archive" },
    ]);
    expect(JSON.parse(done ?? "{}")).toEqual({ status: "ready" });
  }, 300_000);
});

/**
 * A live viewer of an object that read the first two entries and then fell far behind (its
 * fan-out is paced, or it sat idle without viewers): its stored position is deep in the head,
 * and what Redis holds next is the first entry of the tail.
 */
async function behindObject(
  id: string,
  entries: readonly string[],
  signal?: AbortSignal,
): Promise<Response> {
  await restartTailAt(id, {
    position: entries[1] ?? "0-0",
    lastCursor: `${entries[1]}:${PER_ENTRY - 1}`,
    ended: null,
    nextLine: 2 * PER_ENTRY,
  });
  return viewer.stream(id, { signal });
}

describe("the live tail of an object far behind a build past head + tail", () => {
  it("gives a viewer every line once and in order, the hole announced and served from the archive", async () => {
    const id = uniqueJobId("behind");
    const job = await createJob(redis, id, viewer.id, "running");
    // Still running: its 15 complete segments are archived, and the runner trimmed the middle.
    const entries = await writeNumberedLog(redis, id, TOTAL);
    await archiveLog(redis, store, id, { maxSegments: 100 });
    const gone = entries.slice(HEAD_ENTRIES, entries.length - TAIL_ENTRIES);
    for (let i = 0; i < gone.length; i += 100)
      await redis.xdel(logStreamKey(id), gone.slice(i, i + 100));
    const response = await behindObject(id, entries);
    // The build ends while the viewer watches.
    await writeNumberedLog(redis, id, 0, {
      from: TOTAL,
      end: "ready",
      startMs: Number(entries.at(-1)?.split("-")[0]) + 1,
    });
    await endJobRecord(redis, job);
    const { lines, done } = await readStream(response);
    expect(
      auditLines(
        lines.map((line) => line.text),
        TOTAL,
        2 * PER_ENTRY,
      ),
    ).toEqual({ seen: TOTAL - 2 * PER_ENTRY, missing: 0, duplicated: 0, outOfOrder: 0 });
    const at = lines.findIndex((line) => line.gap !== undefined);
    expect(lines.filter((line) => line.gap !== undefined).map((line) => line.gap)).toEqual([
      { lines: TOTAL - (HEAD_ENTRIES + TAIL_ENTRIES) * PER_ENTRY, where: "archive" },
    ]);
    // Right where the live copy jumps: after the head's last line, before the archive's first.
    expect(lines[at]?.source).toBe("system");
    expect(lines[at]?.cursor).toBe(`${entries[HEAD_ENTRIES - 1]}:${PER_ENTRY - 1}`);
    expect(lines[at - 1]?.text).toBe(numberedText(HEAD_ENTRIES * PER_ENTRY - 1));
    expect(lines[at + 1]?.text).toBe(numberedText(HEAD_ENTRIES * PER_ENTRY));
    expect(JSON.parse(done ?? "{}")).toEqual({ status: "ready" });
  }, 300_000);

  it("resumes a viewer exactly when the object is evicted halfway through the hole", async () => {
    const id = uniqueJobId("behind-evicted");
    await createJob(redis, id, viewer.id, "running");
    // Two complete segments, then the end; the archived lines 5,000..14,999 left Redis.
    const entries = await writeNumberedLog(redis, id, 20_000, { end: "ready" });
    await archiveLog(redis, store, id, { maxSegments: 100 });
    await redis.xdel(logStreamKey(id), entries.slice(HEAD_ENTRIES, 30));
    const texts: string[] = [];
    const notices: LogLine[] = [];
    let lastId = "";
    let done: string | null = null;
    /** Reads the viewer's stream until `stop` says so after a line, or `done`. */
    const read = async (response: Response, stop: () => boolean) => {
      const stream = sseReader(response);
      for (;;) {
        const frame = await stream.nextMatching(isEvent);
        if (frame === null) return;
        lastId = frame.id ?? lastId;
        if (frame.event === "done") {
          done = frame.data ?? "";
          return;
        }
        for (const line of linesOf(frame)) {
          if (line.gap === undefined) texts.push(line.text);
          else notices.push(line);
        }
        if (stop()) return;
      }
    };
    const connection = new AbortController();
    await read(await behindObject(id, entries, connection.signal), () =>
      texts.includes(numberedText(8_000)),
    );
    // A deploy with the hole half served: the stream drops, the object goes, and the viewer
    // comes back with its last id, as EventSource does, to a new instance.
    connection.abort();
    await evictDurableObject(env.JOB_STREAM.getByName(id));
    const evicted = done === null;
    await read(await viewer.stream(id, { lastEventId: lastId }), () => false);
    expect(evicted).toBe(true);
    expect(auditLines(texts, 20_000, 2 * PER_ENTRY)).toEqual({
      seen: 20_000 - 2 * PER_ENTRY,
      missing: 0,
      duplicated: 0,
      outOfOrder: 0,
    });
    // The hole announced when the tail met it, and again (its size unknown from a cursor whose
    // entry is gone) when the resumed viewer's catch-up met the rest of it; nothing lost.
    expect(notices.map((line) => line.gap?.where)).toEqual(["archive", "archive"]);
    expect(notices[0]?.gap?.lines).toBe(10_000);
    expect(JSON.parse(done ?? "{}")).toEqual({ status: "ready" });
  }, 120_000);

  it("counts lines the archive does not have as lost, in a system line, and goes on", async () => {
    const id = uniqueJobId("behind-lost");
    await createJob(redis, id, viewer.id, "running");
    const entries = await writeNumberedLog(redis, id, 20_000);
    // Lines 5,000..9,999 leave Redis before any archive has them (Redis lost them).
    await redis.xdel(logStreamKey(id), entries.slice(10, 20));
    const response = await behindObject(id, entries);
    await writeNumberedLog(redis, id, 0, {
      from: 20_000,
      end: "failed",
      startMs: Number(entries.at(-1)?.split("-")[0]) + 1,
    });
    const { lines, done } = await readStream(response);
    expect(
      auditLines(
        lines.map((line) => line.text),
        20_000,
        2 * PER_ENTRY,
      ),
    ).toEqual({
      seen: 20_000 - 2 * PER_ENTRY - 5_000,
      missing: 5_000,
      duplicated: 0,
      outOfOrder: 0,
    });
    const at = lines.findIndex((line) => line.gap !== undefined);
    expect(lines.filter((line) => line.gap !== undefined).map((line) => line.gap)).toEqual([
      { lines: 5_000, where: "lost" },
    ]);
    expect(lines[at]?.text).toBe(
      "5,000 lines are missing here: they were lost before they could be archived.",
    );
    expect(lines[at]?.cursor).toBe(`${entries[9]}:${PER_ENTRY - 1}`);
    expect(lines[at + 1]?.text).toBe(numberedText(10_000));
    expect(JSON.parse(done ?? "{}")).toEqual({ status: "failed" });
  }, 60_000);
});

describe("lines that are nowhere", () => {
  it("are announced with their count in history, the download and the stream", async () => {
    const id = uniqueJobId("lost");
    const job = await createJob(redis, id, viewer.id, "running");
    const entries = await writeNumberedLog(redis, id, 20_000, { end: "ready" });
    await endJobRecord(redis, job);
    // Entries 5..9 (lines 2,500..4,999) vanish before any archive has them.
    await redis.xdel(logStreamKey(id), entries.slice(5, 10));
    const page = (await (
      await viewer.get(`/api/jobs/${id}/logs?limit=500&after=${entries[4]}:400`)
    ).json()) as Page;
    const gapAt = page.lines.findIndex((line) => line.gap !== undefined);
    expect(page.lines[gapAt]?.gap).toEqual({ lines: 2_500, where: "lost" });
    expect(page.lines[gapAt]?.cursor).toBe(`${entries[4]}:499`);
    expect(page.lines[gapAt + 1]?.text).toBe("line 0005000 of the numbered build");
    expect(page.lines.filter((line) => line.gap === undefined)).toHaveLength(500);

    // Backward, a page that ends right at the hole: the notice goes with the line after it.
    const back = (await (
      await viewer.get(`/api/jobs/${id}/logs?limit=10&before=${entries[10]}:10`)
    ).json()) as Page;
    expect(back.lines[0]?.gap).toEqual({ lines: 2_500, where: "lost" });
    expect(back.lines.filter((line) => line.gap === undefined)).toHaveLength(10);
    const older = (await (
      await viewer.get(`/api/jobs/${id}/logs?limit=50&before=${back.cursors.before}`)
    ).json()) as Page;
    expect(older.lines.some((line) => line.gap !== undefined)).toBe(false);
    expect(older.lines.at(-1)?.text).toBe("line 0002499 of the numbered build");

    const text = await (await viewer.get(`/api/jobs/${id}/logs.txt`)).text();
    expect(text).toContain("2,500 lines are missing here");
    expect(text.split("\n").filter(Boolean)).toHaveLength(17_501);

    const { lines } = await readStream(await viewer.stream(id, { lastEventId: `${entries[0]}:0` }));
    expect(lines.filter((line) => line.gap !== undefined).map((line) => line.gap)).toEqual([
      { lines: 2_500, where: "lost" },
    ]);
    expect(
      auditLines(
        lines.map((line) => line.text),
        20_000,
        1,
      ).missing,
    ).toBe(2_500);
  }, 60_000);
});
