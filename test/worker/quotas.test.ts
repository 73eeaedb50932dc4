import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { countJobCreation, secondsUntilAllowed } from "../../src/jobs/quotas.ts";
import { createRedis } from "../../src/redis.ts";
import { recordsOwnedBy, testRedis } from "../support/jobs.ts";
import { testUserId } from "../support/tokens.ts";
import { BUILD_SPEC as spec, testUser } from "../support/worker-client.ts";

const redis = testRedis(env);
const create = (userId: string, body: object): Promise<Response> =>
  testUser(userId).post("/api/jobs", body);

describe("jobs created per user per minute (JOBS_PER_USER_PER_MINUTE, 10)", () => {
  it("answers the 11th in a minute 429 with Retry-After and writes no record for it", async () => {
    const userId = testUserId();
    for (let i = 0; i < 10; i++) expect((await create(userId, spec)).status).toBe(201);
    const refused = await create(userId, spec);
    expect(refused.status).toBe(429);
    expect(await refused.json()).toMatchObject({ error: { code: "rate_limited" } });
    const retryAfter = Number(refused.headers.get("Retry-After"));
    expect(Number.isInteger(retryAfter) && retryAfter >= 1 && retryAfter <= 120).toBe(true);
    expect(await recordsOwnedBy(redis, userId)).toBe(10);
    // Someone else is not held to this user's count.
    expect((await create(testUserId(), spec)).status).toBe(201);
  });

  it("weighs the previous minute, so a burst at a minute's edge does not get twice the limit", async () => {
    const userId = testUserId();
    const rule = { limit: 10, windowSeconds: 60 };
    const worker = createRedis(env);
    const minute = Math.floor(Date.now() / 60_000) * 60_000;
    for (let i = 0; i < 10; i++)
      expect(await countJobCreation(worker, userId, rule, minute + 59_000)).toEqual({
        allowed: true,
      });
    // One second into the next minute, the last one still counts for 59/60 of its jobs.
    const verdict = await countJobCreation(worker, userId, rule, minute + 61_000);
    expect(verdict.allowed).toBe(false);
    // Half a minute later, half of them count: 5 more fit, and the refusal above took nothing.
    for (let i = 0; i < 5; i++)
      expect((await countJobCreation(worker, userId, rule, minute + 90_000)).allowed).toBe(true);
    expect((await countJobCreation(worker, userId, rule, minute + 90_000)).allowed).toBe(false);
  });

  it.each([
    // [previous, current, elapsed, seconds]: when the next one fits.
    [10, 0, 1 / 60, 5],
    [0, 10, 0.5, 30 + 6],
    [10, 6, 0.5, 12],
  ])("says when the next fits: previous %i, current %i at %f of the minute", (p, c, e, s) => {
    expect(secondsUntilAllowed(p, c, e, { limit: 10, windowSeconds: 60 })).toBe(s);
  });
});

describe("a spec too large for the Queue (128 KB per message)", () => {
  it.each([
    // Newlines take two bytes each in JSON: under the 96 KiB of files, over the Queue's limit.
    ["files that grow in JSON", { ...spec, files: { "notes.txt": "\n".repeat(90_000) } }],
    // Sealed values grow by a third in base64.
    [
      "env that grows once sealed",
      {
        ...spec,
        env: Object.fromEntries(
          Array.from({ length: 4 }, (_, i) => [`VAR_${i}`, "v".repeat(30_000)]),
        ),
      },
    ],
  ])("is refused with 413 before any record is written: %s", async (_case, body) => {
    const userId = testUserId();
    const response = await create(userId, body);
    expect(response.status).toBe(413);
    expect(await response.json()).toMatchObject({ error: { code: "too_large" } });
    expect(await recordsOwnedBy(redis, userId)).toBe(0);
  });

  it("takes one just under it, and the Queue carries it", async () => {
    const userId = testUserId();
    const response = await create(userId, { ...spec, files: { "big.txt": "x".repeat(90_000) } });
    expect(response.status).toBe(201);
    expect(await recordsOwnedBy(redis, userId)).toBe(1);
  });
});
