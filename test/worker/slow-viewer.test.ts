import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { stepAlarmsUntil } from "../support/job-stream.ts";
import { jobWithLog, testRedis } from "../support/jobs.ts";
import { isEvent, sseReader, textsOf } from "../support/sse.ts";
import { testUser } from "../support/worker-client.ts";

const redis = testRedis(env);
const viewer = testUser("user_slow");

describe("a viewer that cannot keep up", () => {
  it("is closed rather than fed a gap, and resumes exactly from its last id", async () => {
    const { jobId, writer } = await jobWithLog(redis, "slow", viewer.id);
    const stream = sseReader(await viewer.stream(jobId));
    await stream.next();
    const expected: string[] = [];
    let last = "";
    const pad = "x".repeat(900);
    for (let entry = 0; entry < 40; entry++) {
      const texts = Array.from({ length: 50 }, (_, i) => `line ${entry * 50 + i} ${pad}`);
      expected.push(...texts);
      last = (await writer.append(...texts)).id;
    }
    // Not read while ~1.8 MB is written: the object fans it out until the viewer is past the
    // lag bound and closed (or, were it never closed, until everything went out).
    await stepAlarmsUntil(jobId, (object) => object.viewers === 0 || object.position === last);
    const got: string[] = [];
    let lastId = "";
    for (;;) {
      const frame = await stream.next();
      if (frame === null) break;
      lastId = frame.id ?? lastId;
      if (frame.event === "log") got.push(...textsOf(frame));
      if (got.length === expected.length) break;
    }
    expect(got).toEqual(expected.slice(0, got.length));
    expect(got.length).toBeLessThan(expected.length);
    const resumed = sseReader(await viewer.stream(jobId, { lastEventId: lastId }));
    while (got.length < expected.length) {
      const frame = await resumed.nextMatching(isEvent);
      if (frame === null) break;
      got.push(...textsOf(frame));
    }
    expect(got).toEqual(expected);
    await resumed.cancel();
  });
});
