import { EventSource } from "eventsource";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import generatedFrom from "../../src/client/generated/openapi.json" with { type: "json" };
import {
  BuildLogApiError,
  type BuildLogClient,
  createBuildLogClient,
  type EventSourceConstructor,
  type LiveLog,
  type LiveLogEvent,
  type LogLine,
} from "../../src/client/index.ts";
import { type Stack, startStack } from "../../tools/dev/stack.ts";
import { createJob, streamWriter, testRedis } from "../support/jobs.ts";
import { uniqueJobId } from "../support/redis.ts";

// The typed client (src/client) against the whole system on loopback: redis-server behind the
// Upstash bridge, the Worker in local workerd, the runner with its local sandbox. Jobs are real
// builds, or a stream the test writes in the runner's format so it decides when lines come and
// when the server closes the stream (POST /internal/jobs/:id/disconnect).
let stack: Stack;
let redis: ReturnType<typeof testRedis>;
const USER = "user_client";

interface Recorded {
  readonly url: string;
  readonly method: string;
  readonly status: number;
}

/** A client for USER whose requests are recorded; `rewrite` may change a URL before it goes. */
function clientFor(
  options: { user?: string; now?: () => number; rewrite?: (url: string) => string } = {},
): { client: BuildLogClient; requests: Recorded[] } {
  const requests: Recorded[] = [];
  const client = createBuildLogClient({
    baseUrl: stack.workerUrl,
    getToken: () => stack.signToken(options.user ?? USER),
    ...(options.now === undefined ? {} : { now: options.now }),
    EventSource: EventSource as unknown as EventSourceConstructor,
    fetch: async (input, init) => {
      const url = options.rewrite?.(input) ?? input;
      const response = await fetch(url, init);
      requests.push({ url, method: init?.method ?? "GET", status: response.status });
      return response;
    },
  });
  return { client, requests };
}

async function disconnect(jobId: string): Promise<number> {
  const response = await fetch(`${stack.workerUrl}/internal/jobs/${jobId}/disconnect`, {
    method: "POST",
    headers: { Authorization: `Bearer ${stack.runnerToken}` },
  });
  expect(response.status).toBe(200);
  return ((await response.json()) as { disconnected: number }).disconnected;
}

/** Pulls events one at a time, so a test can act between them. */
function reader(log: LiveLog) {
  const iterator = log[Symbol.asyncIterator]();
  const seen: LiveLogEvent[] = [];
  return {
    seen,
    lines: (): string[] =>
      seen.flatMap((event) => (event.type === "log" ? event.lines.map((line) => line.text) : [])),
    async until(predicate: (event: LiveLogEvent) => boolean): Promise<LiveLogEvent> {
      for (;;) {
        const next = await iterator.next();
        if (next.done)
          throw new Error(
            `the log ended before the awaited event; saw ${JSON.stringify(seen.map((event) => event.type))}`,
          );
        seen.push(next.value);
        if (predicate(next.value)) return next.value;
      }
    },
    async rest(): Promise<void> {
      for (;;) {
        const next = await iterator.next();
        if (next.done) return;
        seen.push(next.value);
      }
    },
  };
}

const texts = (from: number, to: number): string[] =>
  Array.from({ length: to - from + 1 }, (_, i) => `line ${from + i}`);

beforeAll(async () => {
  stack = await startStack({
    runnerOutput: "ignore",
    workerVars: { SSE_HEARTBEAT_MS: "300" },
  });
  redis = testRedis({
    UPSTASH_REDIS_REST_URL: stack.bridge.url,
    UPSTASH_REDIS_REST_TOKEN: stack.bridge.token,
  });
}, 120_000);

afterAll(async () => {
  await stack?.stop();
}, 60_000);

describe("the typed client against the real stack", () => {
  it("creates a build, follows it to done, and pages its history both ways", async () => {
    const { client } = clientFor();
    const job = await client.createJob({
      steps: [
        {
          name: "Counting",
          phase: "build",
          command: 'for i in $(seq 1 25); do echo "count $i"; done',
        },
      ],
    });
    expect(job.status).toBe("queued");
    const { lines, status } = await client.openLog(job.id).collect();
    expect(status).toBe("ready");
    const counts = lines.map((line) => line.text).filter((text) => text.startsWith("count "));
    expect(counts).toEqual(Array.from({ length: 25 }, (_, i) => `count ${i + 1}`));
    expect(new Set(lines.map((line) => line.cursor)).size).toBe(lines.length);
    // The step's marks come through typed, and the record lists the step.
    expect(lines.flatMap((line) => (line.step === undefined ? [] : [line.step]))).toEqual([
      { i: 0, name: "Counting", event: "start" },
      {
        i: 0,
        name: "Counting",
        event: "end",
        status: "succeeded",
        exit: 0,
        ms: expect.any(Number),
      },
    ]);
    expect((await client.getJob(job.id)).steps).toMatchObject([
      { index: 0, name: "Counting", status: "succeeded", lines: 27 },
    ]);
    expect((await client.getJob(job.id)).status).toBe("ready");
    expect((await client.listJobs({ status: "ready", limit: 1 })).jobs).toMatchObject([
      { id: job.id },
    ]);

    const forward: LogLine[] = [];
    let forwardPages = 0;
    for await (const page of client.pages(job.id, { direction: "forward", limit: 7 })) {
      forward.push(...page.lines);
      forwardPages += 1;
    }
    expect(forward).toEqual(lines);
    expect(forwardPages).toBe(Math.ceil(lines.length / 7));

    const backward: LogLine[][] = [];
    for await (const page of client.pages(job.id, { direction: "backward", limit: 7 }))
      backward.push([...page.lines]);
    expect(backward.reverse().flat()).toEqual(lines);
  });

  it("yields each step's start and end as typed events, right after the lines that carry them", async () => {
    const { client } = clientFor();
    const job = await client.createJob({
      steps: [
        { name: "Installing", phase: "install", command: "echo installed" },
        { name: "Building", phase: "build", command: "echo compiling; exit 3" },
      ],
    });
    const log = reader(client.openLog(job.id));
    await log.rest();
    const steps = log.seen.flatMap((event) => (event.type === "step" ? [event] : []));
    expect(steps.map((event) => event.mark)).toMatchObject([
      { i: 0, name: "Installing", event: "start" },
      { i: 0, name: "Installing", event: "end", status: "succeeded", exit: 0 },
      { i: 1, name: "Building", event: "start" },
      { i: 1, name: "Building", event: "end", status: "failed", exit: 3 },
    ]);
    // Each comes after the log event whose line it is, and names that line.
    for (const step of steps) {
      const carrier = log.seen.findLastIndex(
        (event, i) =>
          i < log.seen.indexOf(step) &&
          event.type === "log" &&
          event.lines.some((line) => line.cursor === step.cursor),
      );
      expect(carrier).toBeGreaterThanOrEqual(0);
      expect(step.line.step).toEqual(step.mark);
    }
    expect(log.seen.at(-1)).toMatchObject({ type: "done", status: "failed" });
  });

  it("resumes after a log event's last line, not after a step mark inside it", async () => {
    const jobId = uniqueJobId("client-step-resume");
    await createJob(redis, jobId, USER);
    const writer = streamWriter(redis, jobId);
    // One entry: a step's start mark, then two lines of its output.
    await writer.appendLines([
      {
        text: "--- Building ---",
        source: "system",
        step: { i: 0, name: "Building", event: "start" },
      },
      { text: "line 1" },
      { text: "line 2" },
    ]);
    const { client } = clientFor();
    const events = reader(client.openLog(jobId, { reconnect: { delayMs: 50 } }));
    await events.until((event) => event.type === "step");
    await events.until((event) => event.type === "heartbeat");
    expect(await disconnect(jobId)).toBe(1);
    await writer.append("line 3");
    const reconnected = await events.until(
      (event) => event.type === "connected" && event.attempt > 0,
    );
    expect(reconnected).toMatchObject({ after: expect.stringMatching(/:2$/) });
    await writer.end("ready", "line 4");
    await events.rest();
    expect(events.lines()).toEqual(["--- Building ---", "line 1", "line 2", "line 3", "line 4"]);
  });

  it("cancels a running build: its log ends with done cancelled, and a second cancel is refused", async () => {
    const { client } = clientFor();
    const job = await client.createJob({
      steps: [
        {
          name: "Waiting",
          phase: "build",
          command: "echo started; while true; do sleep 0.2; done",
        },
      ],
    });
    const log = reader(client.openLog(job.id));
    await log.until(
      (event) => event.type === "log" && event.lines.some((l) => l.text === "started"),
    );
    expect((await client.cancelJob(job.id)).status).toBe("running");
    expect(await log.until((event) => event.type === "done")).toMatchObject({
      type: "done",
      status: "cancelled",
    });
    expect(log.lines().at(-1)).toBe(`The build was cancelled by ${USER}.`);
    const again = await client.cancelJob(job.id).catch((error: unknown) => error);
    expect(again).toBeInstanceOf(BuildLogApiError);
    expect(again).toMatchObject({ status: 409, code: "job_ended" });
  });

  it("resumes exactly after the server closes the stream, and reports heartbeats", async () => {
    const jobId = uniqueJobId("client-resume");
    await createJob(redis, jobId, USER);
    const writer = streamWriter(redis, jobId);
    await writer.append(...texts(1, 5));
    const { client } = clientFor();
    const log = client.openLog(jobId, { reconnect: { delayMs: 50 } });
    const events = reader(log);
    await events.until(
      (event) => event.type === "log" && event.lines.some((line) => line.text === "line 5"),
    );
    await events.until((event) => event.type === "heartbeat");

    expect(await disconnect(jobId)).toBe(1);
    // Written while nobody is connected: the reconnect must bring these, once.
    await writer.append(...texts(6, 9));
    await events.until((event) => event.type === "reconnecting");
    const reconnected = await events.until((event) => event.type === "connected");
    expect(reconnected).toMatchObject({
      type: "connected",
      attempt: 1,
      after: expect.stringMatching(/:4$/),
    });
    await events.until(
      (event) => event.type === "log" && event.lines.some((line) => line.text === "line 9"),
    );

    // A second drop, then the end.
    expect(await disconnect(jobId)).toBe(1);
    await writer.append(...texts(10, 12));
    await writer.end("failed", "line 13");
    await events.rest();
    expect(events.lines()).toEqual(texts(1, 13));
    expect(events.seen.at(-1)).toMatchObject({ type: "done", status: "failed" });
    expect(events.seen.filter((event) => event.type === "reconnecting")).toMatchObject([
      { reason: "closed" },
      { reason: "closed" },
    ]);
    expect(log.status).toBe("done");
  });

  it("renews a refused ticket once (401) and carries on", async () => {
    const jobId = uniqueJobId("client-ticket-401");
    await createJob(redis, jobId, USER);
    const writer = streamWriter(redis, jobId);
    await writer.append(...texts(1, 3));
    let tampered = false;
    const { client, requests } = clientFor({
      // The first stream request carries a ticket whose signature is not ours: the server says 401.
      rewrite: (url) => {
        if (tampered || !url.includes("/logs/stream")) return url;
        tampered = true;
        const parsed = new URL(url);
        parsed.searchParams.set("ticket", `${parsed.searchParams.get("ticket")?.slice(0, -4)}AAAA`);
        return parsed.href;
      },
    });
    const events = reader(client.openLog(jobId, { auth: "ticket" }));
    await events.until((event) => event.type === "log");
    await writer.end("ready");
    await events.rest();
    expect(events.lines()).toEqual(texts(1, 3));
    const streams = requests.filter((request) => request.url.includes("/logs/stream"));
    expect(streams.map((request) => request.status)).toEqual([401, 200]);
    expect(requests.filter((request) => request.url.endsWith("/logs/ticket"))).toHaveLength(2);
    expect(events.seen.find((event) => event.type === "reconnecting")).toMatchObject({
      reason: "http_401",
      delayMs: 0,
    });
  });

  it("renews a ticket that is about to expire before it reconnects (the EventSource transport)", async () => {
    const jobId = uniqueJobId("client-ticket-renew");
    await createJob(redis, jobId, USER);
    const writer = streamWriter(redis, jobId);
    await writer.append(...texts(1, 4));
    // The client's clock, which the test moves on: the server's tickets live 300 s.
    let skew = 0;
    const { client, requests } = clientFor({ now: () => Date.now() + skew });
    const events = reader(
      client.openLog(jobId, {
        auth: "ticket",
        transport: "eventsource",
        reconnect: { delayMs: 50 },
      }),
    );
    await events.until(
      (event) => event.type === "log" && event.lines.some((line) => line.text === "line 4"),
    );
    const tickets = (): number =>
      requests.filter((request) => request.url.endsWith("/logs/ticket")).length;
    expect(tickets()).toBe(1);

    skew = 290_000; // 10 s left: inside the 30 s margin
    expect(await disconnect(jobId)).toBe(1);
    await writer.append(...texts(5, 6));
    await events.until((event) => event.type === "connected" && event.attempt > 0);
    expect(tickets()).toBe(2);
    await writer.end("ready");
    await events.rest();
    expect(events.lines()).toEqual(texts(1, 6));
    expect(events.seen.at(-1)).toMatchObject({ type: "done", status: "ready" });
  });

  it("stops on abort without an error, and throws the API's code for a job it may not read", async () => {
    const jobId = uniqueJobId("client-abort");
    await createJob(redis, jobId, USER);
    const writer = streamWriter(redis, jobId);
    await writer.append(...texts(1, 2));
    const { client } = clientFor();
    const controller = new AbortController();
    const log = client.openLog(jobId, { signal: controller.signal });
    const events = reader(log);
    await events.until((event) => event.type === "log");
    controller.abort();
    await events.rest();
    expect(log.status).toBe("closed");
    expect(events.seen.some((event) => event.type === "done")).toBe(false);

    const stranger = clientFor({ user: "user_someone_else" }).client;
    await expect(stranger.openLog(jobId).collect()).rejects.toMatchObject({
      name: "BuildLogApiError",
      status: 404,
      code: "job_not_found",
    });
    await expect(stranger.getJob(jobId)).rejects.toBeInstanceOf(BuildLogApiError);
    await expect(client.logPage(jobId, { after: "zzz" })).rejects.toMatchObject({
      status: 400,
      code: "invalid_cursor",
    });
    await writer.end("ready");
  });

  it("is typed after the document the Worker serves, bundled as a deploy bundles it", async () => {
    // wrangler's bundle (esbuild), not vitest's: hono-openapi converts the schemas at run time,
    // through imports a bundler must keep working.
    const response = await fetch(`${stack.workerUrl}/api/openapi.json`);
    expect(response.status).toBe(200);
    expect(await response.json()).toEqual(generatedFrom);
  });
});
