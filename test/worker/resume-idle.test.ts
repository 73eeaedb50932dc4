import { env, exports } from "cloudflare:workers";
import { beforeAll, describe, expect, it } from "vitest";
import { r2Store } from "../../src/log/archive-store.ts";
import { archiveLog } from "../../src/log/archiver.ts";
import { compareEntryIds, type LogLine } from "../../src/shared/entry.ts";
import type { JobRecord } from "../../src/shared/job.ts";
import { jobKey, logStreamKey } from "../../src/shared/keys.ts";
import { stepAlarmsUntil } from "../support/job-stream.ts";
import { createJob, streamWriter, testRedis } from "../support/jobs.ts";
import { uniqueJobId } from "../support/redis.ts";
import { isEvent, type SseFrame, sseReader } from "../support/sse.ts";
import { createTestSigner } from "../support/tokens.ts";

const redis = testRedis(env);
let token = "";
beforeAll(async () => {
  token = await (await createTestSigner(env.TEST_CLERK_SIGNING_JWK)).sign({ sub: "user_resume" });
});
const get = (path: string, headers: Record<string, string> = {}) =>
  exports.default.fetch(`http://example.com${path}`, {
    headers: { Authorization: `Bearer ${token}`, ...headers },
  });
const textsOf = (f: SseFrame | null): string[] =>
  f?.data ? (JSON.parse(f.data) as { lines: LogLine[] }).lines.map((l) => l.text) : [];
const withTimeout = <T>(p: Promise<T>, ms: number): Promise<T | "TIMEOUT"> =>
  Promise.race([p, new Promise<"TIMEOUT">((r) => setTimeout(() => r("TIMEOUT"), ms))]);

// Regressions found in review: a resuming viewer must get exactly the lines after its cursor
// even from an object that sat idle, and a viewer of an archived job always gets done.
describe("resuming against an object that stopped reading", () => {
  it("gives a viewer of an archived job its lines and done, though the object never saw the end", async () => {
    const jobId = uniqueJobId("stale-archived");
    const job = await createJob(redis, jobId, "user_resume", "running");
    const w = streamWriter(redis, jobId);
    await w.append("one");
    // a viewer watches for a while, then leaves before the end
    const s1 = sseReader(await get(`/api/jobs/${jobId}/logs/stream`));
    await s1.next();
    await w.append("two");
    expect(textsOf(await s1.nextMatching(isEvent))).toEqual(["two"]);
    await s1.cancel();
    // Gone: the object reads no more, so it never sees the end.
    await stepAlarmsUntil(jobId, (object) => object.viewers === 0);
    const three = await w.append("three");
    await w.end("ready", "fin");
    await redis.set(
      jobKey(jobId),
      JSON.stringify({
        ...job,
        status: "ready",
        finished_at: new Date().toISOString(),
      } satisfies JobRecord),
    );
    await archiveLog(redis, r2Store(env.ARCHIVE), jobId);
    await redis.del(logStreamKey(jobId)); // 24 h later
    const s2 = sseReader(await get(`/api/jobs/${jobId}/logs/stream?after=${three.cursors[0]}`));
    const frames: (SseFrame | null | "TIMEOUT")[] = [];
    for (let i = 0; i < 3; i++) {
      const f = await withTimeout(s2.nextMatching(isEvent), 2500);
      frames.push(f);
      if (f === "TIMEOUT" || f === null || f.event === "done") break;
    }
    await s2.cancel();
    expect(
      frames.flatMap((f) => (f === "TIMEOUT" || f === null || f.event !== "log" ? [] : textsOf(f))),
    ).toEqual(["fin"]);
    expect(frames.some((f) => f !== "TIMEOUT" && f?.event === "done")).toBe(true);
  });

  it("gives a resuming viewer of an archived job every line to the end, past where the object stopped", async () => {
    // The fault suite's case: every viewer was closed (lag) and the object stopped following;
    // they came back once the job was archived, with a cursor at the object's position.
    const jobId = uniqueJobId("stopped-short");
    const job = await createJob(redis, jobId, "user_resume", "running");
    const w = streamWriter(redis, jobId);
    await w.append("one");
    const s1 = sseReader(await get(`/api/jobs/${jobId}/logs/stream`));
    await s1.next();
    const two = await w.append("two");
    expect(textsOf(await s1.nextMatching(isEvent))).toEqual(["two"]);
    await s1.cancel();
    await new Promise((r) => setTimeout(r, 300));
    await w.append("three");
    await w.append("four");
    await w.end("ready", "fin");
    await redis.set(
      jobKey(jobId),
      JSON.stringify({
        ...job,
        status: "ready",
        finished_at: new Date().toISOString(),
      } satisfies JobRecord),
    );
    await archiveLog(redis, r2Store(env.ARCHIVE), jobId);
    const s2 = sseReader(await get(`/api/jobs/${jobId}/logs/stream?after=${two.cursors[0]}`));
    const frames: (SseFrame | null | "TIMEOUT")[] = [];
    for (let i = 0; i < 5; i++) {
      const f = await withTimeout(s2.nextMatching(isEvent), 2500);
      frames.push(f);
      if (f === "TIMEOUT" || f === null || f.event === "done") break;
    }
    await s2.cancel();
    expect(
      frames.flatMap((f) => (f === "TIMEOUT" || f === null || f.event !== "log" ? [] : textsOf(f))),
    ).toEqual(["three", "four", "fin"]);
    expect(frames.at(-1)).toMatchObject({ event: "done" });
  });

  it("resumes exactly from a cursor far past what the idle object had read", async () => {
    const jobId = uniqueJobId("far-cursor");
    await createJob(redis, jobId, "user_resume", "running");
    const w = streamWriter(redis, jobId);
    await w.append("start");
    const s1 = sseReader(await get(`/api/jobs/${jobId}/logs/stream`));
    await s1.next();
    await s1.cancel();
    // The object placed itself at "start", then lost its viewer: it stops reading there.
    await stepAlarmsUntil(jobId, (object) => object.viewers === 0 && object.position !== null);
    // 70 entries of ~36 KB: with MAX_VIEWER_LAG_BYTES=262144 (budget 64 KiB) one entry per poll
    const big = "x".repeat(1800);
    for (let i = 0; i < 70; i++)
      await w.append(...Array.from({ length: 20 }, (_, j) => `${i}-${j} ${big}`));
    const target = await w.append("t0", "t1", "t2");
    const s2 = sseReader(await get(`/api/jobs/${jobId}/logs/stream?after=${target.cursors[0]}`));
    // The object works off its backlog (one entry per alarm) past the viewer's cursor before
    // anything new comes: none of it may reach the viewer again.
    await stepAlarmsUntil(
      jobId,
      (object) => compareEntryIds(object.position ?? "0-0", target.id) >= 0,
    );
    await w.append("after");
    const got: string[] = [];
    while (!got.includes("after")) {
      const f = await withTimeout(s2.nextMatching(isEvent), 20000);
      if (f === "TIMEOUT" || f === null) {
        got.push(String(f));
        break;
      }
      got.push(...textsOf(f).map((t) => t.slice(0, 8)));
    }
    await s2.cancel();
    expect(got).toEqual(["t1", "t2", "after"]);
  }, 60000);
});
