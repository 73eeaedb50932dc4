import { evictDurableObject, runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { afterEach, describe, expect, it, vi } from "vitest";
import type { JobStream } from "../../src/stream/job-stream.ts";
import { stepAlarmsUntil } from "../support/job-stream.ts";
import { createJob, jobWithLog, streamWriter, testRedis } from "../support/jobs.ts";
import { uniqueJobId } from "../support/redis.ts";
import { isEvent, sseReader, textsOf } from "../support/sse.ts";
import { call, testUser } from "../support/worker-client.ts";

// The live path end to end inside workerd: Worker route (Clerk auth, ownership) -> the job's
// Durable Object -> SSE, against redis-server through the Upstash bridge. The runner's side is
// played by writing entries in its format straight to the stream.
const redis = testRedis(env);
const owner = testUser("user_owner");
const stranger = testUser("user_stranger");

const newJob = (label: string) => jobWithLog(redis, label, owner.id);

afterEach(() => {
  vi.restoreAllMocks();
});

describe("GET /api/jobs/:id/logs/stream", () => {
  it("answers with SSE headers and sends new lines as exact log events", async () => {
    const jobId = uniqueJobId("sse-bytes");
    await createJob(redis, jobId, owner.id);
    // Every line stamped with one time, so the frame's bytes are known to the letter.
    const writer = streamWriter(redis, jobId, { ts: "2026-11-21T12:00:00.000Z" });
    await writer.append("before the viewer");
    const response = await owner.stream(jobId);
    expect(response.status).toBe(200);
    expect(response.headers.get("Content-Type")).toMatch(/^text\/event-stream/);
    expect(response.headers.get("Cache-Control")).toMatch(/no-cache/);
    expect(response.headers.get("X-Accel-Buffering")).toBe("no");
    const stream = sseReader(response);
    expect((await stream.next())?.raw).toBe("retry: 2000\n\n");
    const { id } = await writer.append("first", "second");
    const frame = await stream.nextMatching(isEvent);
    expect(frame?.raw).toBe(
      `id: ${id}:1\nevent: log\ndata: {"lines":[` +
        `{"ts":"2026-11-21T12:00:00.000Z","source":"stdout","phase":"build","text":"first","cursor":"${id}:0","n":1},` +
        `{"ts":"2026-11-21T12:00:00.000Z","source":"stdout","phase":"build","text":"second","cursor":"${id}:1","n":2}` +
        "]}\n\n",
    );
    expect(frame?.id).toBe(`${id}:1`);
    expect(frame?.event).toBe("log");
    expect(textsOf(frame)).toEqual(["first", "second"]);
    await stream.cancel();
  });

  it("gives several viewers identical bytes", async () => {
    const { jobId, writer } = await newJob("identical");
    const streams = await Promise.all([
      owner.stream(jobId),
      owner.stream(jobId),
      owner.stream(jobId),
    ]).then((responses) => responses.map(sseReader));
    for (const stream of streams) await stream.next();
    await writer.append("shared line 1", "shared line 2");
    await writer.append("shared line 3");
    const frames = await Promise.all(
      streams.map(async (stream) => [
        (await stream.nextMatching(isEvent))?.raw,
        (await stream.nextMatching(isEvent))?.raw,
      ]),
    );
    expect(frames[0]?.[0]).toContain("shared line 1");
    expect(frames[1]).toEqual(frames[0]);
    expect(frames[2]).toEqual(frames[0]);
    await Promise.all(streams.map((stream) => stream.cancel()));
  });

  it("resumes after Last-Event-ID with no gap and no duplicate, inside an entry too", async () => {
    const { jobId, writer } = await newJob("resume");
    await writer.append("a1", "a2");
    const second = await writer.append("b1", "b2", "b3");
    await writer.append("c1");
    const stream = sseReader(await owner.stream(jobId, { lastEventId: second.cursors[0] ?? "" }));
    const texts: string[] = [];
    while (texts.length < 3) texts.push(...textsOf(await stream.nextMatching(isEvent)));
    expect(texts).toEqual(["b2", "b3", "c1"]);
    await writer.append("d1");
    expect(textsOf(await stream.nextMatching(isEvent))).toEqual(["d1"]);
    await stream.cancel();
  });

  it("takes ?after= like Last-Event-ID", async () => {
    const { jobId, writer } = await newJob("after-param");
    const first = await writer.append("x1", "x2");
    await writer.append("y1");
    const stream = sseReader(await owner.stream(jobId, { after: first.cursors[0] ?? "" }));
    const texts: string[] = [];
    while (texts.length < 2) texts.push(...textsOf(await stream.nextMatching(isEvent)));
    expect(texts).toEqual(["x2", "y1"]);
    await stream.cancel();
  });

  it("stores its position by its next alarm", async () => {
    const { jobId, writer } = await newJob("stored");
    const stream = sseReader(await owner.stream(jobId));
    await stream.next();
    await writer.append("s1", "s2");
    const seen = await stream.nextMatching(isEvent);
    const stub = env.JOB_STREAM.getByName(jobId);
    await runDurableObjectAlarm(stub);
    const stored = await runInDurableObject(stub, async (_instance: JobStream, state) =>
      state.storage.get<{ position: string }>("state"),
    );
    expect(stored?.position).toBe(seen?.id?.split(":")[0]);
    await stream.cancel();
  });

  it("resumes exactly across a restart of the object, also one before it stored its position", async () => {
    const { jobId, writer } = await newJob("restart");
    const stream = sseReader(await owner.stream(jobId));
    await stream.next();
    await writer.append("r1", "r2");
    const seen = await stream.nextMatching(isEvent);
    expect(textsOf(seen)).toEqual(["r1", "r2"]);
    // Evicted at once (a deploy): the position stored may be from before r1. The runner writes
    // on while the object is gone.
    await stream.cancel();
    await evictDurableObject(env.JOB_STREAM.getByName(jobId));
    await writer.append("r3");
    await writer.append("r4", "r5");
    const resumed = sseReader(await owner.stream(jobId, { lastEventId: seen?.id ?? "" }));
    const texts: string[] = [];
    while (texts.length < 3) texts.push(...textsOf(await resumed.nextMatching(isEvent)));
    expect(texts).toEqual(["r3", "r4", "r5"]);
    // Nothing it had comes again once the object reads on from where it stood.
    await writer.append("r6");
    expect(textsOf(await resumed.nextMatching(isEvent))).toEqual(["r6"]);
    await resumed.cancel();
  });

  it("sends heartbeats on an idle stream", async () => {
    const { jobId } = await newJob("heartbeat");
    const stream = sseReader(await owner.stream(jobId));
    expect((await stream.next())?.raw).toBe("retry: 2000\n\n");
    // A live-only viewer gets an id to resume from before any line.
    expect((await stream.next())?.raw).toBe("id: 0-0:0\n\n");
    expect((await stream.next())?.raw).toBe(": heartbeat\n\n");
    expect((await stream.next())?.raw).toBe(": heartbeat\n\n");
    await stream.cancel();
  });

  it("sets its alarm again when workerd lost it, with no push, wake or new viewer to do so", async () => {
    const { jobId, writer } = await newJob("alarm-lost");
    const stream = sseReader(await owner.stream(jobId));
    await stream.nextMatching((frame) => frame.id !== undefined);
    const stub = env.JOB_STREAM.getByName(jobId);
    const alarm = () => runInDurableObject(stub, (_: JobStream, state) => state.storage.getAlarm());
    await writer.append("before");
    expect(textsOf(await stream.nextMatching(isEvent))).toEqual(["before"]);
    // As if workerd had lost it a minute ago (src/shared/alarm.ts): no alarm is stored, none
    // ran since, and this runner pushes nothing (no Worker URL), so the object reads Redis
    // only on its alarm. Its watchdog sets it again, and the next line is read.
    await runInDurableObject(stub, async (instance: JobStream, state) => {
      await state.storage.deleteAlarm();
      (instance as unknown as { lastAlarmAt: number }).lastAlarmAt = Date.now() - 60_000;
    });
    expect(await alarm()).toBeNull();
    await writer.append("after");
    expect(textsOf(await stream.nextMatching(isEvent))).toEqual(["after"]);
    await stream.cancel();
  });

  it("takes no quiet spell before its first viewer for a lost alarm, however long that viewer's catch-up", async () => {
    const { jobId, writer } = await newJob("alarm-quiet");
    const pad = "x".repeat(900);
    let first = "";
    // More than the lag bound, so a resume from the start is paced by a viewer that reads nothing.
    for (let entry = 0; entry < 20; entry++) {
      const texts = Array.from({ length: 50 }, (_, i) => `line ${entry * 50 + i} ${pad}`);
      const { cursors } = await writer.append(...texts);
      if (entry === 0) first = cursors[0] ?? "";
    }
    const earlier = sseReader(await owner.stream(jobId));
    await earlier.next();
    await earlier.cancel();
    await stepAlarmsUntil(jobId, (object) => object.viewers === 0);
    const stub = env.JOB_STREAM.getByName(jobId);
    // Its last alarm ended a minute ago, when its viewers had gone: none was due since.
    await runInDurableObject(stub, async (instance: JobStream) => {
      (instance as unknown as { lastAlarmAt: number }).lastAlarmAt = Date.now() - 60_000;
    });
    const warned: unknown[][] = [];
    vi.spyOn(console, "warn").mockImplementation((...args: unknown[]) => void warned.push(args));
    const paced = await owner.stream(jobId, { lastEventId: first });
    // Several of the watchdog's checks while the catch-up waits for room.
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    await paced.body?.cancel();
    expect(warned).toEqual([]);
  });

  it("ends with the remaining lines, done with the status, and a close", async () => {
    const { jobId, writer } = await newJob("done");
    const stream = sseReader(await owner.stream(jobId));
    await stream.next();
    await writer.append("last lines");
    const end = await writer.end("failed", "Command failed with exit code 2");
    const texts: string[] = [];
    let frame = await stream.nextMatching(isEvent);
    while (frame?.event === "log") {
      texts.push(...textsOf(frame));
      frame = await stream.nextMatching(isEvent);
    }
    expect(texts).toEqual(["last lines", "Command failed with exit code 2"]);
    expect(frame?.raw).toBe(`id: ${end.cursors[0]}\nevent: done\ndata: {"status":"failed"}\n\n`);
    expect(await stream.next()).toBeNull();
  });

  it("after the end, gives a late viewer the lines after its cursor, done, and the close", async () => {
    const { jobId, writer } = await newJob("late");
    const first = await writer.append("l1", "l2");
    await writer.end("ready", "l3");
    const late = sseReader(await owner.stream(jobId, { lastEventId: first.cursors[1] ?? "" }));
    expect(textsOf(await late.nextMatching(isEvent))).toEqual(["l3"]);
    expect((await late.nextMatching(isEvent))?.event).toBe("done");
    expect(await late.next()).toBeNull();
    const fresh = sseReader(await owner.stream(jobId));
    const done = await fresh.nextMatching(isEvent);
    expect(done?.event).toBe("done");
    expect(JSON.parse(done?.data ?? "{}")).toEqual({ status: "ready" });
    expect(await fresh.next()).toBeNull();
  });

  it("caps concurrent viewers with 429, Retry-After and a JSON error, and frees a place on disconnect", async () => {
    const { jobId } = await newJob("cap");
    const max = Number(env.MAX_VIEWERS_PER_JOB);
    const controllers = Array.from({ length: max }, () => new AbortController());
    const open = await Promise.all(
      controllers.map((controller) => owner.stream(jobId, { signal: controller.signal })),
    );
    const readers = open.map(sseReader);
    await Promise.all(readers.map((reader) => reader.next()));
    expect(open.every((response) => response.status === 200)).toBe(true);
    const refused = await owner.stream(jobId);
    expect(refused.status).toBe(429);
    expect(refused.headers.get("Retry-After")).toMatch(/^\d+$/);
    expect(await refused.json()).toMatchObject({ error: { code: "too_many_viewers" } });
    await readers[0]?.cancel();
    controllers[0]?.abort();
    // Once the object counts the one who left, the next viewer is let in.
    await stepAlarmsUntil(jobId, (object) => object.viewers < max);
    const admitted = await owner.stream(jobId);
    expect(admitted.status).toBe(200);
    await sseReader(admitted).cancel();
    await Promise.all(readers.slice(1).map((reader) => reader.cancel()));
  });

  it("answers 404 to a viewer who does not own the job and 401 without a token", async () => {
    const { jobId } = await newJob("stream-auth");
    const notYours = await stranger.stream(jobId);
    expect(notYours.status).toBe(404);
    expect(await notYours.json()).toMatchObject({ error: { code: "job_not_found" } });
    const anonymous = await call(`/api/jobs/${jobId}/logs/stream`);
    expect(anonymous.status).toBe(401);
  });

  it.each(["nonsense", "1-0", "1-0:x", "1-0:0\r\nevent: done"])(
    "rejects the malformed cursor %j with 400",
    async (cursor) => {
      const { jobId } = await newJob("bad-cursor");
      const response = await owner.stream(jobId, { after: cursor });
      expect(response.status).toBe(400);
      expect(await response.json()).toMatchObject({ error: { code: "invalid_cursor" } });
    },
  );
});
