import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { decodeStreamReply, encodeEntryFields, type LogRecord } from "../../src/shared/entry.ts";
import { logStreamKey } from "../../src/shared/keys.ts";
import { testRedis } from "../support/jobs.ts";
import { uniqueJobId } from "../support/redis.ts";
import { call } from "../support/worker-client.ts";

describe("the Worker", () => {
  it("answers its health check", async () => {
    const response = await call("/healthz");
    expect(response.status).toBe(200);
    expect(await response.json()).toEqual({ ok: true });
  });

  it("answers an unknown route with a JSON error and a stable code", async () => {
    const response = await call("/nope");
    expect(response.status).toBe(404);
    expect(await response.json()).toMatchObject({ error: { code: "not_found" } });
  });
});

describe("Redis from inside workerd", () => {
  it("reads back the runner's entry format through @upstash/redis and the bridge", async () => {
    const redis = testRedis(env);
    const jobId = uniqueJobId("workerd");
    const records: LogRecord[] = [
      { ts: "2026-11-21T12:00:00.000Z", source: "stdout", phase: "build", text: "42" },
      {
        ts: "2026-11-21T12:00:00.001Z",
        source: "stderr",
        phase: "build",
        text: 'ünïcode ✓ "quoted"',
      },
    ];
    await redis.xadd(logStreamKey(jobId), "1000-0", encodeEntryFields(records));
    const entries = decodeStreamReply(await redis.xrange(logStreamKey(jobId), "-", "+"));
    expect(entries).toEqual([
      {
        id: "1000-0",
        lines: [
          { ...records[0], cursor: "1000-0:0" },
          { ...records[1], cursor: "1000-0:1" },
        ],
      },
    ]);
  });
});
