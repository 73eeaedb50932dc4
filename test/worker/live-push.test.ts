import { evictDurableObject, runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import type { Redis } from "@upstash/redis/cloudflare";
import { describe, expect, it, vi } from "vitest";
import { archiveStoreFromEnv, r2Store } from "../../src/log/archive-store.ts";
import { archiveLog } from "../../src/log/archiver.ts";
import { createRedis } from "../../src/redis.ts";
import {
  decodeEntry,
  encodeEndFields,
  encodeEntryFields,
  type LogLine,
  type LogRecord,
} from "../../src/shared/entry.ts";
import { logStreamKey } from "../../src/shared/keys.ts";
import type { LivePush, LivePushAnswer } from "../../src/shared/live-push.ts";
import type { JobStream } from "../../src/stream/job-stream.ts";
import { type DecodedPush, Tail } from "../../src/stream/tail.ts";
import type { FanOutSlice } from "../../src/stream/viewers.ts";
import { createLivePusher, type LivePushTransport } from "../../worker-build-runner/live-push.ts";
import { createRedisLogWriter } from "../../worker-build-runner/redis-writer.ts";
import { restartTailAt } from "../support/job-stream.ts";
import { createJob, testRedis } from "../support/jobs.ts";
import { auditLines, numberedText, writeNumberedLog } from "../support/numbered-log.ts";
import { uniqueJobId } from "../support/redis.ts";
import { seededRandom } from "../support/seeded-random.ts";
import { isEvent, linesOf, sseReader, textsOf } from "../support/sse.ts";
import { asRunner, testUser } from "../support/worker-client.ts";

// The live path by push: the runner's entries reach viewers through POST
// /internal/jobs/:id/entries and the job's Durable Object, with Redis read only to fill a gap.
// To tell a pushed entry from a read one, some tests push a text Redis does not hold.
const redis = testRedis(env);
const viewer = testUser("user_push");

const pushRoute = (jobId: string, body: unknown, token?: string): Promise<Response> =>
  asRunner(jobId, "entries", { body, token });

const transport: LivePushTransport = {
  async push(jobId, push) {
    const response = await pushRoute(jobId, push);
    if (!response.ok) throw new Error(`push answered ${response.status}`);
    return (await response.json()) as LivePushAnswer;
  },
};

const record = (text: string) => ({
  ts: new Date().toISOString(),
  source: "stdout" as const,
  phase: "build",
  text,
});

/** An entry written to Redis by hand, with the entry before it in the stream. */
interface Written {
  readonly id: string;
  readonly previous: string;
  readonly text: string;
  readonly n: number | undefined;
}

/**
 * A job whose runner the test plays: `write` puts an entry in Redis as the runner does (with
 * the line number `n` when given), `push` sends it to the object as the runner would, by
 * default as runner-a and with the text Redis holds; `send` does both.
 */
async function pushedJob(label: string) {
  const jobId = uniqueJobId(label);
  await createJob(redis, jobId, viewer.id);
  const key = logStreamKey(jobId);
  let ms = Date.now();
  let previous = "0-0";
  const write = async (text: string, n?: number): Promise<Written> => {
    const id = `${++ms}-0`;
    await redis.xadd(key, id, encodeEntryFields([record(text)], n));
    const written = { id, previous, text, n };
    previous = id;
    return written;
  };
  const push = (
    written: Written,
    options: { text?: string; writer?: string; previous?: string } = {},
  ): Promise<Response> =>
    pushRoute(jobId, {
      writer: options.writer ?? "runner-a",
      previous: options.previous ?? written.previous,
      entries: [
        {
          id: written.id,
          fields: encodeEntryFields([record(options.text ?? written.text)], written.n),
        },
      ],
    });
  const send = async (text: string, n?: number): Promise<Response> => push(await write(text, n));
  return { jobId, write, push, send };
}

/** A push of `written` as runner-a sends it, with the text Redis holds unless `text` is given. */
const asPushed = (written: Written, text = written.text): DecodedPush => ({
  writer: "runner-a",
  previous: written.previous,
  entries: [decodeEntry(written.id, encodeEntryFields([record(text)], written.n))],
});

/** What the tail reads new entries with (XRANGE); `real` is the test's Redis. */
type XRange = (
  real: Redis,
  key: string,
  start: string,
  end: string,
  count?: number,
) => Promise<unknown>;

/** A tail outside any object, at the stream's start, reading new entries with `xrange`; its fan-outs in `slices`. */
function detachedTail(jobId: string, xrange: XRange, sliceBytes: number) {
  const slices: FanOutSlice[] = [];
  const real = createRedis(env);
  const reads = { xrange: (...args: [string, string, string, number?]) => xrange(real, ...args) };
  const tail = new Tail(
    {
      jobId,
      redis: () => reads as unknown as Redis,
      archive: () => archiveStoreFromEnv(env),
      save: async () => undefined,
      fanOut: (slice) => slices.push(slice),
      ended: () => undefined,
    },
    { sliceBytes },
  );
  tail.load({ position: "0-0", lastCursor: null, ended: null });
  return { tail, slices };
}

/** A pushed job with one viewer, placed at the object's position; `next` is its next event's texts. */
async function watchedJob(label: string) {
  const job = await pushedJob(label);
  const stream = sseReader(await viewer.stream(job.jobId));
  // The resume id frame comes once the object has placed the viewer at its position.
  await stream.nextMatching((frame) => frame.id !== undefined);
  const next = async (): Promise<string[]> => textsOf(await stream.nextMatching(isEvent));
  return { ...job, stream, next };
}

describe("POST /internal/jobs/:id/entries", () => {
  it("fans a push that follows on out at once, without reading Redis", async () => {
    const { stream, write, push, send, next } = await watchedJob("push-no-read");
    // A writer's first pushes are checked against Redis (until the object has polled for the
    // last time before pushes came, one of them may find nothing new to check).
    for (const text of ["one", "two"]) {
      const answer = await send(text);
      expect(answer.status).toBe(200);
      expect(await answer.json()).toEqual({ viewers: 1, paced: false });
      expect(await next()).toEqual([text]);
    }
    // Then it is trusted: what it pushes goes out as pushed, though Redis holds other text.
    await push(await write("three as in Redis"), { text: "three as pushed" });
    expect(await next()).toEqual(["three as pushed"]);
    await stream.cancel();
  });

  it("reads the gap from Redis when a push does not follow on, so no line is lost or repeated", async () => {
    const { jobId, stream, write, push, send, next } = await watchedJob("push-gap");
    const a = await write("a");
    await push(a);
    expect(await next()).toEqual(["a"]);
    // The push of b is lost; c's push names b as its previous entry.
    const b = await write("b");
    await send("c");
    const texts: string[] = [];
    while (texts.length < 2) texts.push(...(await next()));
    expect(texts).toEqual(["b", "c"]);
    // A late copy of an old push changes nothing.
    await push(b, { previous: a.id });
    // A keepalive that names a newer top reads it.
    const d = await write("d");
    await pushRoute(jobId, { writer: "runner-a", previous: d.id, entries: [] });
    expect(await next()).toEqual(["d"]);
    await stream.cancel();
  });

  it("checks a second writer's first push against Redis", async () => {
    const { stream, write, push, send, next } = await watchedJob("push-two-writers");
    await send("a");
    expect(await next()).toEqual(["a"]);
    // Another runner claims b follows a, but pushes a text Redis does not hold: Redis wins.
    await push(await write("b in Redis"), { writer: "runner-b", text: "b as pushed" });
    expect(await next()).toEqual(["b in Redis"]);
    await stream.cancel();
  });

  it("takes pushes that queued while the object was busy in one fan-out, as pushed", async () => {
    const { jobId, write } = await pushedJob("push-merge");
    const slices: FanOutSlice[] = [];
    const tail = new Tail(
      {
        jobId,
        redis: () => createRedis(env),
        archive: () => archiveStoreFromEnv(env),
        save: async () => undefined,
        fanOut: (slice) => slices.push(slice),
        ended: () => undefined,
      },
      { sliceBytes: 1024 * 1024 },
    );
    tail.load({ position: "0-0", lastCursor: null, ended: null });
    const asPushed = (written: Written, text: string): DecodedPush => ({
      writer: "runner-a",
      previous: written.previous,
      entries: [decodeEntry(written.id, encodeEntryFields([record(text)], written.n))],
    });
    // The writer's first push is checked against Redis; then it is trusted.
    const a = await write("a");
    tail.queuePush(asPushed(a, "a"));
    await tail.takePushes();
    const b = await write("b in Redis");
    const c = await write("c in Redis");
    tail.queuePush(asPushed(b, "b as pushed"));
    tail.queuePush(asPushed(c, "c as pushed"));
    await tail.takePushes();
    expect(slices.map((slice) => slice.ids)).toEqual([[a.id], [b.id, c.id]]);
    expect(slices[1]?.events.join("")).toContain("b as pushed");
    expect(slices[1]?.events.join("")).toContain("c as pushed");
    expect(tail.position).toBe(c.id);
  });

  it("tries every push taken in one turn, though one before it failed", async () => {
    const { jobId, write } = await pushedJob("push-fail-one");
    // Redis fails the first read only.
    let failures = 1;
    const { tail, slices } = detachedTail(
      jobId,
      async (real, ...args) => {
        if (failures-- > 0) throw new Error("Redis away for a moment");
        return await real.xrange(...args);
      },
      1024 * 1024,
    );
    const a = await write("a");
    const b = await write("b");
    const c = await write("c");
    // a's push, then c's (b's was lost): both queued while the object was busy.
    tail.queuePush(asPushed(a));
    tail.queuePush(asPushed(c));
    await expect(tail.takePushes()).rejects.toThrow("Redis away for a moment");
    // c's push reads the gap, as it would have in a turn of its own.
    expect(slices.map((slice) => slice.ids)).toEqual([[a.id, b.id, c.id]]);
  });

  it("holds a bounded number of bytes of pushes while a turn is slow, and reads the rest from Redis", async () => {
    const { jobId, write } = await pushedJob("push-queue-bound");
    // The first read is answered late (a slow Redis), with what Redis held when it was made.
    let release = (): void => undefined;
    const late = new Promise<void>((resolve) => {
      release = resolve;
    });
    let reads = 0;
    const sliceBytes = 16 * 1024;
    const { tail, slices } = detachedTail(
      jobId,
      async (real, ...args) => {
        const reply = await real.xrange(...args);
        if (reads++ === 0) await late;
        return reply;
      },
      sliceBytes,
    );
    const a = await write("a");
    tail.queuePush(asPushed(a));
    const first = tail.takePushes();
    // Meanwhile the runner, answered at once, goes on pushing: 1 MiB in 1 KiB lines.
    const written: Written[] = [];
    for (let i = 0; i < 1024; i++) {
      const entry = await write(`${i} ${"x".repeat(1024)}`);
      written.push(entry);
      tail.queuePush(asPushed(entry, `${i} as pushed`));
    }
    expect(tail.queuedPushBytes).toBeLessThanOrEqual(4 * sliceBytes + 2 * 1024);
    release();
    await first;
    await tail.takePushes();
    while (tail.backlog) await tail.read();
    // Every line once and in order, whatever was dropped from the queue.
    expect(slices.flatMap((slice) => slice.ids)).toEqual([a.id, ...written.map((e) => e.id)]);
    expect(tail.queuedPushBytes).toBe(0);
  });

  it("answers 0 viewers for a job nobody watches, and fans nothing out", async () => {
    const { send } = await pushedJob("push-unwatched");
    expect(await (await send("a")).json()).toEqual({ viewers: 0, paced: false });
  });

  it("serves a viewer who comes after the runner was told nobody watches, until it pushes again", async () => {
    const { jobId, write, send } = await pushedJob("push-late-viewer");
    expect(await (await send("a")).json()).toEqual({ viewers: 0, paced: false });
    const stream = sseReader(await viewer.stream(jobId));
    await stream.nextMatching((frame) => frame.id !== undefined);
    // The runner stopped pushing: the object reads for itself, well before its safety interval.
    await write("b");
    expect(textsOf(await stream.nextMatching(isEvent))).toEqual(["b"]);
    // The runner's next probe finds a viewer; its pushes go out again.
    expect(await (await send("c")).json()).toEqual({ viewers: 1, paced: false });
    expect(textsOf(await stream.nextMatching(isEvent))).toEqual(["c"]);
    await stream.cancel();
  });

  it("is for the runner only, and refuses malformed pushes with stable codes", async () => {
    const jobId = uniqueJobId("push-bad");
    const entry = { id: "1-0", fields: encodeEntryFields([record("x")]) };
    const good = { writer: "w", previous: "0-0", entries: [entry] };
    expect((await pushRoute(jobId, good, "wrong-token")).status).toBe(401);
    const cases: [unknown, string][] = [
      [{ ...good, previous: "nope" }, "invalid_push"],
      [
        { ...good, entries: [{ id: "1-0", fields: { v: "1", lines: "not json" } }] },
        "invalid_push",
      ],
      [{ ...good, entries: [entry, entry] }, "invalid_push"],
      [{ ...good, previous: "2-0" }, "invalid_push"],
    ];
    for (const [body, code] of cases) {
      const response = await pushRoute(jobId, body);
      expect(response.status).toBe(400);
      expect(await response.json()).toMatchObject({ error: { code } });
    }
    const badId = await pushRoute("bad id!", good);
    expect(badId.status).toBe(400);
    expect(await badId.json()).toMatchObject({ error: { code: "invalid_job_id" } });
  });

  it("reads Redis itself when pushes stop (a silent runner), after the safety interval", async () => {
    const { stream, write, send, next } = await watchedJob("push-silent");
    await send("a");
    expect(await next()).toEqual(["a"]);
    // Written, never pushed: the safety poll (TAIL_SAFETY_POLL_MS, 1 s here) brings it.
    await write("b");
    expect(await next()).toEqual(["b"]);
    await stream.cancel();
  });
});

describe("a push and the line numbers", () => {
  it("announces the lines a trusted push jumps over, though its ids follow on", async () => {
    const { stream, write, push, send, next } = await watchedJob("push-line-jump");
    // The object started at the empty stream's end: line 0 comes next.
    for (const [n, text] of ["a", "b"].entries()) {
      await send(text, n);
      expect(await next()).toEqual([text]);
    }
    // Lines 2..499 never reached Redis (lost with it); the next entry follows on by id.
    const c = await write("c", 500);
    await push(c);
    const notice = linesOf(await stream.nextMatching(isEvent));
    expect(notice).toMatchObject([
      {
        source: "system",
        text: "498 lines are missing here: they were lost before they could be archived.",
        cursor: `${c.previous}:0`,
        gap: { lines: 498, where: "lost" },
      },
    ]);
    expect(await next()).toEqual(["c"]);
    // Past the hole the pushes go out as before.
    await send("d", 501);
    expect(await next()).toEqual(["d"]);
    await stream.cancel();
  });

  it("reads the hole behind the runner's trim from the archive for a push to an object far behind", async () => {
    const jobId = uniqueJobId("push-behind-trim");
    await createJob(redis, jobId, viewer.id);
    const ids = await writeNumberedLog(redis, jobId, 3_000, { linesPerEntry: 10 });
    await archiveLog(redis, r2Store(env.ARCHIVE), jobId, { segmentLines: 500, maxSegments: 100 });
    // The runner kept the head (lines 0..99) and the tail (2,500..2,999) once archived.
    await redis.xdel(logStreamKey(jobId), ids.slice(10, 250));
    // The object had sent lines 0..19 when it went; it was pushed to.
    await restartTailAt(jobId, {
      position: ids[1] ?? "0-0",
      lastCursor: `${ids[1]}:9`,
      ended: null,
      pushed: true,
      nextLine: 20,
    });
    const stream = sseReader(await viewer.stream(jobId));
    await stream.nextMatching((frame) => frame.id !== undefined);
    // The runner's last batch, pushed with the entry before it: not where the object stands.
    const last = await writeNumberedLog(redis, jobId, 10, {
      from: 3_000,
      linesPerEntry: 10,
      startMs: Number(ids.at(-1)?.split("-")[0]),
      end: "ready",
    });
    const records = (from: number, count: number): LogRecord[] =>
      Array.from({ length: count }, (_, i) => record(numberedText(from + i)));
    const answer = await pushRoute(jobId, {
      writer: "runner-a",
      previous: ids.at(-1),
      entries: [
        { id: last[0], fields: encodeEntryFields(records(3_000, 10), 3_000) },
        { id: last[1], fields: encodeEndFields("ready", [], 3_010) },
      ],
    });
    expect(answer.status).toBe(200);
    const lines: LogLine[] = [];
    let frame = await stream.nextMatching(isEvent);
    while (frame?.event === "log") {
      lines.push(...linesOf(frame));
      frame = await stream.nextMatching(isEvent);
    }
    expect(frame?.event).toBe("done");
    expect(
      auditLines(
        lines.map((line) => line.text),
        3_010,
        20,
      ),
    ).toEqual({ seen: 2_990, missing: 0, duplicated: 0, outOfOrder: 0 });
    const at = lines.findIndex((line) => line.gap !== undefined);
    expect(lines.filter((line) => line.gap !== undefined).map((line) => line.gap)).toEqual([
      { lines: 2_400, where: "archive" },
    ]);
    expect(lines[at]?.cursor).toBe(`${ids[9]}:9`);
    expect(lines[at + 1]?.text).toBe(numberedText(100));
  });
});

describe("the object's one alarm", () => {
  it("reads at the next alarm when woken, though pushes keep its safety read away", async () => {
    const { jobId, stream, write, send, next } = await watchedJob("alarm-wake");
    await send("a");
    expect(await next()).toEqual(["a"]);
    // The end is written but its push is lost; the runner's end notice wakes the object.
    await write("b");
    expect((await asRunner(jobId, "wake")).status).toBe(204);
    await runDurableObjectAlarm(env.JOB_STREAM.getByName(jobId));
    expect(await next()).toEqual(["b"]);
    await stream.cancel();
  });

  it("sets a lost alarm again while pushes flow (the watchdog; heartbeats and safety reads hang on it)", async () => {
    const { jobId, stream, send, next } = await watchedJob("alarm-lost");
    const stub = env.JOB_STREAM.getByName(jobId);
    const alarm = () => runInDurableObject(stub, (_: JobStream, state) => state.storage.getAlarm());
    // The viewer's admission arms it.
    await vi.waitFor(async () => expect(await alarm()).not.toBeNull());
    // As if workerd had lost the alarm a minute ago (src/shared/alarm.ts): none ran since, and
    // none is coming. Heartbeats and safety reads hang on it.
    await runInDurableObject(stub, async (instance: JobStream, state) => {
      await state.storage.deleteAlarm();
      (instance as unknown as { lastAlarmAt: number }).lastAlarmAt = Date.now() - 60_000;
    });
    await send("a");
    expect(await next()).toEqual(["a"]);
    await vi.waitFor(async () => expect(await alarm()).not.toBeNull());
    await stream.cancel();
  });

  it("arms no further alarm once its viewers are gone: nobody watching costs no reads", async () => {
    const { jobId, stream } = await watchedJob("alarm-stops");
    const stub = env.JOB_STREAM.getByName(jobId);
    expect(await (await asRunner(jobId, "disconnect")).json()).toEqual({ disconnected: 1 });
    await stream.cancel();
    // The alarm armed while it was watched runs (or already ran) and does not come back.
    await runDurableObjectAlarm(stub);
    expect(await runDurableObjectAlarm(stub)).toBe(false);
  });
});

/** Connections the test can cut all at once, keeping the viewers away until it lets them back. */
function outages() {
  const connections = new Set<AbortController>();
  let back: Promise<void> = Promise.resolve();
  let open: () => void = () => undefined;
  return {
    connection(): AbortController {
      const controller = new AbortController();
      connections.add(controller);
      return controller;
    },
    /** Cuts every viewer's stream; they reconnect once `end()` is called. */
    begin(): void {
      back = new Promise<void>((resolve) => (open = resolve));
      for (const controller of connections) controller.abort();
      connections.clear();
    },
    end: () => open(),
    get back() {
      return back;
    },
  };
}

/** A viewer as EventSource behaves: on a dropped stream it reconnects with its last id, until `done`. */
async function follow(jobId: string, network: ReturnType<typeof outages>, onConnected: () => void) {
  const texts: string[] = [];
  let lastId: string | undefined;
  let reconnects = 0;
  for (;;) {
    await network.back;
    const connection = network.connection();
    const stream = sseReader(
      await viewer.stream(jobId, { lastEventId: lastId, signal: connection.signal }),
    );
    if (reconnects === 0) {
      await stream.nextMatching((frame) => frame.id !== undefined);
      onConnected();
    }
    for (;;) {
      const frame = await stream.next();
      if (frame === null) break;
      if (frame.id !== undefined) lastId = frame.id;
      if (frame.event === "log") texts.push(...textsOf(frame));
      if (frame.event === "done") return { texts, reconnects };
    }
    reconnects++;
    if (reconnects > 20) throw new Error(`gave up after ${reconnects} reconnects`);
  }
}

/**
 * The runner's writer and pusher for `jobId`, pushing through `transport`, and `count` viewers
 * following the job over one network; resolves once every viewer is connected.
 */
async function runnerWithViewers(
  jobId: string,
  transport: LivePushTransport,
  count: number,
  timing: { keepaliveMs?: number; probeMs?: number } = {},
) {
  const quiet = { warn: () => undefined };
  const pusher = createLivePusher({ jobId, transport, logger: quiet, ...timing });
  const writer = createRedisLogWriter({
    redis,
    jobId,
    onWritten: pusher.written,
    flushTiming: pusher.flushTiming,
    logger: quiet,
  });
  let connected = 0;
  const network = outages();
  const viewers = Array.from({ length: count }, () =>
    follow(jobId, network, () => {
      connected++;
    }),
  );
  while (connected < count) await new Promise((resolve) => setTimeout(resolve, 10));
  return { pusher, writer, network, viewers };
}

describe("the live path under faults", () => {
  it("gives every viewer every line once and in order, with 10% of pushes lost and the object evicted mid-stream", async () => {
    const jobId = uniqueJobId("push-faults");
    await createJob(redis, jobId, viewer.id);
    const random = seededRandom(15);
    let dropped = 0;
    let delivered = 0;
    // Between the runner and the Worker, as a lossy network would: a dropped push never arrives.
    const lossy: LivePushTransport = {
      async push(id, push: LivePush) {
        if (random() < 0.1) {
          dropped++;
          throw new Error("dropped on the way");
        }
        delivered++;
        return transport.push(id, push);
      },
    };
    const { pusher, writer, network, viewers } = await runnerWithViewers(jobId, lossy, 3, {
      keepaliveMs: 300,
      probeMs: 300,
    });
    const expected: string[] = [];
    const stub = env.JOB_STREAM.getByName(jobId);
    for (let i = 0; i < 600; i++) {
      const text = `line ${i}`;
      expected.push(text);
      writer.append(record(text));
      if (i % 7 === 0) await new Promise((resolve) => setTimeout(resolve, 5));
      if (i === 300) {
        // A deploy: the object goes (its streams with it) while the runner writes and pushes on.
        network.begin();
        await evictDurableObject(stub);
      }
      if (i === 400) network.end();
    }
    await writer.end("ready");
    await pusher.close();
    const results = await Promise.all(viewers);
    for (const result of results) {
      expect(result.texts).toEqual(expected);
      expect(result.reconnects).toBeGreaterThan(0);
    }
    expect(dropped).toBeGreaterThan(0);
    expect(delivered).toBeGreaterThan(dropped);
  }, 60_000);
});

describe("a large audience (past FAN_OUT_PACED_FROM, 2 here)", () => {
  it("tells the runner the object paces, takes each chunk of output as it comes, and gives every viewer every line once and in order, then the end", async () => {
    const jobId = uniqueJobId("push-paced");
    await createJob(redis, jobId, viewer.id);
    const answers: LivePushAnswer[] = [];
    const recording: LivePushTransport = {
      async push(id, push: LivePush) {
        const answer = await transport.push(id, push);
        answers.push(answer);
        return answer;
      },
    };
    const { pusher, writer, viewers } = await runnerWithViewers(jobId, recording, 4);
    // A build printing 10 lines every 20 ms: slices come faster than the object's interval
    // (TAIL_ACTIVE_POLL_MS, 50 here), so it writes each to a share of the viewers in turn.
    const expected: string[] = [];
    const chunks = 60;
    for (let chunk = 0; chunk < chunks; chunk++) {
      for (let i = 0; i < 10; i++) {
        const text = `chunk ${chunk} line ${i}`;
        expected.push(text);
        writer.append(record(text));
      }
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    await writer.end("ready");
    await pusher.close();
    const results = await Promise.all(viewers);
    for (const result of results) {
      expect(result.texts).toEqual(expected);
      expect(result.reconnects).toBe(0);
    }
    expect(answers.some((answer) => answer.viewers === 4 && answer.paced === true)).toBe(true);
    // Told so, the runner sent each chunk (10 lines: its share of the command budget) as it
    // came, not two at a time.
    expect(pusher.stats.pushes - pusher.stats.keepalives).toBeGreaterThanOrEqual(chunks * 0.8);
  }, 60_000);
});
