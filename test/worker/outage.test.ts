import { createExecutionContext, waitOnExecutionContext } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import worker from "../../src/index.ts";
import { uniqueJobId } from "../support/redis.ts";
import { bearer, testUser, WORKER_ORIGIN } from "../support/worker-client.ts";

// Redis out of reach (nothing listens on the port): a standard EventSource gives up for good
// on a 500, so every route that needs Redis answers 503 with Retry-After instead.
const viewer = testUser("user_outage");

async function withoutRedis(path: string): Promise<Response> {
  const ctx = createExecutionContext();
  const response = await worker.fetch(
    new Request(`${WORKER_ORIGIN}${path}`, { headers: bearer(await viewer.token()) }),
    { ...env, UPSTASH_REDIS_REST_URL: "http://127.0.0.1:9" },
    ctx,
  );
  await waitOnExecutionContext(ctx);
  return response;
}

describe("during a Redis outage", () => {
  it.each(["/logs/stream", "/logs", "", "/logs.txt"])(
    "GET /api/jobs/:id%s answers 503 store_unavailable with Retry-After",
    async (suffix) => {
      const response = await withoutRedis(`/api/jobs/${uniqueJobId("outage")}${suffix}`);
      expect(response.status).toBe(503);
      expect(response.headers.get("Retry-After")).toMatch(/^\d+$/);
      expect(await response.json()).toMatchObject({ error: { code: "store_unavailable" } });
    },
  );
});
