import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { encodeEntryFields } from "../../src/shared/entry.ts";
import { logStreamKey } from "../../src/shared/keys.ts";
import type { LivePush, PushReply } from "../../src/shared/live-push.ts";
import { createJob, testRedis } from "../support/jobs.ts";
import { uniqueJobId } from "../support/redis.ts";
import { isEvent, sseReader, textsOf } from "../support/sse.ts";
import { bearer, call, errorOf, testUser } from "../support/worker-client.ts";

// The runner's push socket: the same pushes as POST /internal/jobs/:id/entries, as WebSocket
// messages straight to the job's Durable Object, each answered with its seq.
const redis = testRedis(env);
const viewer = testUser("user_push_socket");

const record = (text: string) => ({
  ts: new Date().toISOString(),
  source: "stdout" as const,
  phase: "build",
  text,
});

/** Opens the job's push socket as the runner does; `next` is the next answer. */
async function openSocket(jobId: string) {
  const response = await call(`/internal/jobs/${jobId}/push-socket`, {
    headers: { ...bearer(env.RUNNER_TOKEN), Upgrade: "websocket" },
  });
  expect(response.status).toBe(101);
  const socket = response.webSocket;
  if (socket === null) throw new Error("no WebSocket in the answer");
  socket.accept();
  const answers: PushReply[] = [];
  const waiting: Array<(answer: PushReply) => void> = [];
  socket.addEventListener("message", (event) => {
    const answer = JSON.parse(String(event.data)) as PushReply;
    const next = waiting.shift();
    if (next) next(answer);
    else answers.push(answer);
  });
  const next = (): Promise<PushReply> => {
    const ready = answers.shift();
    return ready ? Promise.resolve(ready) : new Promise((resolve) => waiting.push(resolve));
  };
  return { socket, next };
}

/** A job with one viewer placed at the object's position, and the runner's side of its stream. */
async function watchedJob(label: string) {
  const jobId = uniqueJobId(label);
  await createJob(redis, jobId, viewer.id);
  const stream = sseReader(await viewer.stream(jobId));
  await stream.nextMatching((frame) => frame.id !== undefined);
  let ms = Date.now();
  let previous = "0-0";
  /** XADDs an entry of `text` and gives the push that carries it. */
  const write = async (text: string): Promise<LivePush> => {
    const id = `${++ms}-0`;
    const fields = encodeEntryFields([record(text)]);
    await redis.xadd(logStreamKey(jobId), id, fields);
    const push = { writer: "runner-a", previous, entries: [{ id, fields }] };
    previous = id;
    return push;
  };
  const nextTexts = async (): Promise<string[]> => textsOf(await stream.nextMatching(isEvent));
  return { jobId, stream, write, nextTexts };
}

describe("GET /internal/jobs/:id/push-socket", () => {
  it("takes pushes as messages, answers each with its seq and the viewer count, and the viewer gets every line once, in order", async () => {
    const { jobId, stream, write, nextTexts } = await watchedJob("push-socket");
    const { socket, next } = await openSocket(jobId);
    const texts: string[] = [];
    for (let seq = 0; seq < 5; seq++) {
      socket.send(JSON.stringify({ seq, push: await write(`line ${seq}`) }));
      expect(await next()).toEqual({ seq, viewers: 1, paced: false });
    }
    while (texts.length < 5) texts.push(...(await nextTexts()));
    expect(texts).toEqual(["line 0", "line 1", "line 2", "line 3", "line 4"]);
    socket.close(1000, "done");
    await stream.cancel();
  });

  it("answers a bad message with invalid_push and its seq, and goes on taking pushes", async () => {
    const { jobId, stream, write, nextTexts } = await watchedJob("push-socket-bad");
    const { socket, next } = await openSocket(jobId);
    socket.send("not json");
    expect(await next()).toMatchObject({ seq: null, error: { code: "invalid_push" } });
    socket.send(
      JSON.stringify({ seq: 7, push: { writer: "runner-a", previous: "x", entries: [] } }),
    );
    expect(await next()).toMatchObject({ seq: 7, error: { code: "invalid_push" } });
    // Ids that do not increase: refused as the POST route refuses them.
    const first = await write("first");
    const entry = first.entries[0];
    if (entry === undefined) throw new Error("no entry");
    socket.send(JSON.stringify({ seq: 8, push: { ...first, entries: [entry, entry] } }));
    expect(await next()).toMatchObject({ seq: 8, error: { code: "invalid_push" } });
    socket.send(JSON.stringify({ seq: 9, push: first }));
    expect(await next()).toEqual({ seq: 9, viewers: 1, paced: false });
    expect(await nextTexts()).toEqual(["first"]);
    socket.close(1000, "done");
    await stream.cancel();
  });

  it("is the runner's alone: no token or a wrong one is refused before the upgrade", async () => {
    const jobId = uniqueJobId("push-socket-auth");
    for (const headers of [
      { Upgrade: "websocket" },
      { ...bearer("wrong"), Upgrade: "websocket" },
    ]) {
      const response = await call(`/internal/jobs/${jobId}/push-socket`, { headers });
      expect(response.status).toBe(401);
      expect(response.webSocket).toBeNull();
      expect((await errorOf(response)).code).toBe("unauthenticated");
    }
  });

  it("answers a request that is not a WebSocket upgrade with 426 upgrade_required", async () => {
    const response = await call(`/internal/jobs/${uniqueJobId("push-socket-get")}/push-socket`, {
      headers: bearer(env.RUNNER_TOKEN),
    });
    expect(response.status).toBe(426);
    expect((await errorOf(response)).code).toBe("upgrade_required");
  });
});
