import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { DEFAULT_RECORD_TTL_SECONDS } from "../../src/jobs/expiry.ts";
import { r2Store } from "../../src/log/archive-store.ts";
import { archiveLog } from "../../src/log/archiver.ts";
import type { JobRecord } from "../../src/shared/job.ts";
import { jobKey, logStreamKey } from "../../src/shared/keys.ts";
import { endJobRecord, jobWithLog, testRedis } from "../support/jobs.ts";
import { uniqueJobId } from "../support/redis.ts";
import { testUser } from "../support/worker-client.ts";

// Job records expire a set time after the job's end, once the log is archived: the archive
// keeps the last record beside the log, so its owner still reads the job; nobody else does.
const redis = testRedis(env);
const owner = testUser("user_expiry_owner");
const stranger = testUser("user_expiry_stranger");

async function endedJob(label: string, endedSecondsAgo: number): Promise<JobRecord> {
  const { job, writer } = await jobWithLog(redis, label, owner.id);
  await writer.append("compiling", "linking");
  await writer.end("ready", "--- Build finished ---");
  return endJobRecord(redis, job, {
    finished_at: new Date(Date.now() - endedSecondsAgo * 1000).toISOString(),
    exit_code: 0,
  });
}

describe("job record expiry", () => {
  it("gives an archived record JOB_RECORD_TTL_SECONDS (7 days) from the job's end", async () => {
    const job = await endedJob("expiry-ttl", 3600);
    expect(await redis.ttl(jobKey(job.id))).toBe(-1);
    await archiveLog(redis, r2Store(env.ARCHIVE), job.id, {
      recordTtl: DEFAULT_RECORD_TTL_SECONDS,
    });
    const ttl = await redis.ttl(jobKey(job.id));
    expect(ttl).toBeGreaterThan(DEFAULT_RECORD_TTL_SECONDS - 3600 - 60);
    expect(ttl).toBeLessThanOrEqual(DEFAULT_RECORD_TTL_SECONDS - 3600);
  });

  it("once the record has expired, answers its owner from the archive and anyone else 404", async () => {
    // Ended a week and a second ago: archived now, its record has 1 second left.
    const job = await endedJob("expiry-gone", DEFAULT_RECORD_TTL_SECONDS + 1);
    await archiveLog(redis, r2Store(env.ARCHIVE), job.id, {
      recordTtl: DEFAULT_RECORD_TTL_SECONDS,
    });
    // The stream too, as Redis drops it after 24 hours.
    await redis.del(logStreamKey(job.id));
    for (let i = 0; i < 100 && (await redis.exists(jobKey(job.id))) === 1; i++)
      await new Promise((resolve) => setTimeout(resolve, 50));
    expect(await redis.exists(jobKey(job.id))).toBe(0);

    const response = await owner.get(`/api/jobs/${job.id}`);
    expect(response.status).toBe(200);
    const record = (await response.json()) as JobRecord;
    expect(record).toMatchObject({ ...job, archived_at: expect.any(String) });
    const page = (await (await owner.get(`/api/jobs/${job.id}/logs`)).json()) as {
      lines: { text: string }[];
    };
    expect(page.lines.map((line) => line.text)).toEqual([
      "compiling",
      "linking",
      "--- Build finished ---",
    ]);
    expect(await (await owner.get(`/api/jobs/${job.id}/logs.txt`)).text()).toContain("linking");

    const notYours = await stranger.get(`/api/jobs/${job.id}`);
    const missing = await stranger.get(`/api/jobs/${uniqueJobId("expiry-missing")}`);
    expect(notYours.status).toBe(404);
    expect(await notYours.json()).toEqual(await missing.json());
  });
});
