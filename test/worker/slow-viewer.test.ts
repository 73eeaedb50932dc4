import { env, exports } from "cloudflare:workers";
import { beforeAll, describe, expect, it } from "vitest";
import type { LogLine } from "../../src/shared/entry.ts";
import { stepAlarmsUntil } from "../support/job-stream.ts";
import { createJob, streamWriter, testRedis } from "../support/jobs.ts";
import { uniqueJobId } from "../support/redis.ts";
import { isEvent, sseReader } from "../support/sse.ts";
import { createTestSigner } from "../support/tokens.ts";

const redis = testRedis(env);
let token = "";
beforeAll(async () => {
  token = await (await createTestSigner(env.TEST_CLERK_SIGNING_JWK)).sign({ sub: "user_slow" });
});
const connect = (jobId: string, lastEventId?: string) =>
  exports.default.fetch(`http://example.com/api/jobs/${jobId}/logs/stream`, {
    headers: {
      Authorization: `Bearer ${token}`,
      ...(lastEventId ? { "Last-Event-ID": lastEventId } : {}),
    },
  });

describe("a viewer that cannot keep up", () => {
  it("is closed rather than fed a gap, and resumes exactly from its last id", async () => {
    const jobId = uniqueJobId("slow");
    await createJob(redis, jobId, "user_slow");
    const writer = streamWriter(redis, jobId);
    const stream = sseReader(await connect(jobId));
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
      if (frame.event === "log")
        got.push(
          ...(JSON.parse(frame.data ?? "{}") as { lines: LogLine[] }).lines.map(
            (line) => line.text,
          ),
        );
      if (got.length === expected.length) break;
    }
    expect(got).toEqual(expected.slice(0, got.length));
    expect(got.length).toBeLessThan(expected.length);
    const resumed = sseReader(await connect(jobId, lastId));
    while (got.length < expected.length) {
      const frame = await resumed.nextMatching(isEvent);
      if (frame === null) break;
      got.push(
        ...(JSON.parse(frame.data ?? "{}") as { lines: LogLine[] }).lines.map((line) => line.text),
      );
    }
    expect(got).toEqual(expected);
    await resumed.cancel();
  });
});
