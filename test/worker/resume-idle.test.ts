import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { r2Store } from "../../src/log/archive-store.ts";
import { archiveLog } from "../../src/log/archiver.ts";
import { compareEntryIds } from "../../src/shared/entry.ts";
import type { JobRecord } from "../../src/shared/job.ts";
import { logStreamKey } from "../../src/shared/keys.ts";
import { stepAlarmsUntil } from "../support/job-stream.ts";
import { endJobRecord, jobWithLog, testRedis } from "../support/jobs.ts";
import { isEvent, type SseFrame, sseReader, textsOf } from "../support/sse.ts";
import { testUser } from "../support/worker-client.ts";

const redis = testRedis(env);
const viewer = testUser("user_resume");
const withTimeout = <T>(p: Promise<T>, ms: number): Promise<T | "TIMEOUT"> =>
  Promise.race([p, new Promise<"TIMEOUT">((r) => setTimeout(() => r("TIMEOUT"), ms))]);

/**
 * A running job whose one viewer saw "one" and "two" and left before the end: its object,
 * with nobody to read for, stops reading, so it never sees what comes next.
 */
async function leftJob(label: string) {
  const { jobId, job, writer } = await jobWithLog(redis, label, viewer.id);
  await writer.append("one");
  const s1 = sseReader(await viewer.stream(jobId));
  await s1.next();
  const two = await writer.append("two");
  expect(textsOf(await s1.nextMatching(isEvent))).toEqual(["two"]);
  await s1.cancel();
  await stepAlarmsUntil(jobId, (object) => object.viewers === 0);
  return { jobId, writer, two, end: (): Promise<JobRecord> => endJobRecord(redis, job) };
}

/** What a viewer resuming after the cursor gets: events until done or the close, or "TIMEOUT". */
async function resumeAfter(jobId: string, cursor: string, most: number) {
  const stream = sseReader(await viewer.stream(jobId, { after: cursor }));
  const frames: (SseFrame | null | "TIMEOUT")[] = [];
  for (let i = 0; i < most; i++) {
    const f = await withTimeout(stream.nextMatching(isEvent), 2500);
    frames.push(f);
    if (f === "TIMEOUT" || f === null || f.event === "done") break;
  }
  await stream.cancel();
  const texts = frames.flatMap((f) =>
    f === "TIMEOUT" || f === null || f.event !== "log" ? [] : textsOf(f),
  );
  return { frames, texts };
}

// Regressions found in review: a resuming viewer must get exactly the lines after its cursor
// even from an object that sat idle, and a viewer of an archived job always gets done.
describe("resuming against an object that stopped reading", () => {
  it("gives a viewer of an archived job its lines and done, though the object never saw the end", async () => {
    const { jobId, writer, end } = await leftJob("stale-archived");
    const three = await writer.append("three");
    await writer.end("ready", "fin");
    await end();
    await archiveLog(redis, r2Store(env.ARCHIVE), jobId);
    await redis.del(logStreamKey(jobId)); // 24 h later
    const { frames, texts } = await resumeAfter(jobId, three.cursors[0] ?? "", 3);
    expect(texts).toEqual(["fin"]);
    expect(frames.some((f) => f !== "TIMEOUT" && f?.event === "done")).toBe(true);
  });

  it("gives a resuming viewer of an archived job every line to the end, past where the object stopped", async () => {
    // The fault suite's case: every viewer was closed (lag) and the object stopped following;
    // they came back once the job was archived, with a cursor at the object's position.
    const { jobId, writer, two, end } = await leftJob("stopped-short");
    await writer.append("three");
    await writer.append("four");
    await writer.end("ready", "fin");
    await end();
    await archiveLog(redis, r2Store(env.ARCHIVE), jobId);
    const { frames, texts } = await resumeAfter(jobId, two.cursors[0] ?? "", 5);
    expect(texts).toEqual(["three", "four", "fin"]);
    expect(frames.at(-1)).toMatchObject({ event: "done" });
  });

  it("resumes exactly from a cursor far past what the idle object had read", async () => {
    const { jobId, writer: w } = await jobWithLog(redis, "far-cursor", viewer.id);
    await w.append("start");
    const s1 = sseReader(await viewer.stream(jobId));
    await s1.next();
    await s1.cancel();
    // The object placed itself at "start", then lost its viewer: it stops reading there.
    await stepAlarmsUntil(jobId, (object) => object.viewers === 0 && object.position !== null);
    // 70 entries of ~36 KB: with MAX_VIEWER_LAG_BYTES=262144 (budget 64 KiB) one entry per poll
    const big = "x".repeat(1800);
    for (let i = 0; i < 70; i++)
      await w.append(...Array.from({ length: 20 }, (_, j) => `${i}-${j} ${big}`));
    const target = await w.append("t0", "t1", "t2");
    const s2 = sseReader(await viewer.stream(jobId, { after: target.cursors[0] ?? "" }));
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
