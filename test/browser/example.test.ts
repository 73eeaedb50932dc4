import type { Page } from "playwright-core";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { type ExampleServer, PAGE, startExampleServer } from "../../examples/live-log/serve.ts";
import { type Stack, startStack } from "../../tools/dev/stack.ts";
import { type Chromium, launchChromium } from "../support/chromium.ts";
import { createJob, streamWriter, testRedis } from "../support/jobs.ts";
import { uniqueJobId } from "../support/redis.ts";

// The example app (examples/live-log: the typed client in a plain TypeScript page, served as
// browser modules) in Debian's chromium, on another origin than the Worker, against the whole
// system on loopback. The server closes the stream mid-build; the page must show every line once.
const USER = "user_example";
const WAIT = { timeout: 60_000, interval: 100 };

let stack: Stack;
let site: ExampleServer;
let chromium: Chromium;
let redis: ReturnType<typeof testRedis>;
const pages: Page[] = [];

beforeAll(async () => {
  site = await startExampleServer();
  stack = await startStack({ runnerOutput: "ignore", workerVars: { CORS_ORIGINS: site.origin } });
  chromium = await launchChromium();
  redis = testRedis({
    UPSTASH_REDIS_REST_URL: stack.bridge.url,
    UPSTASH_REDIS_REST_TOKEN: stack.bridge.token,
  });
}, 180_000);

afterAll(async () => {
  await chromium?.close();
  await stack?.stop();
  await site?.close();
}, 60_000);

afterEach(async () => {
  for (const page of pages.splice(0)) await page.close();
});

async function openExample(
  jobId: string,
  extra: Record<string, string> = {},
): Promise<{ page: Page; errors: string[] }> {
  const page = await chromium.context.newPage();
  pages.push(page);
  const errors: string[] = [];
  page.on("pageerror", (error) => errors.push(error.message));
  const fragment = new URLSearchParams({
    api: stack.workerUrl,
    job: jobId,
    token: stack.signToken(USER, 600),
    ...extra,
  });
  const response = await page.goto(`${site.origin}${PAGE}#${fragment}`);
  expect(response?.status()).toBe(200);
  return { page, errors };
}

const shown = (page: Page): Promise<string[]> => page.locator("#lines > .line").allTextContents();
const statusOf = (page: Page): Promise<string | null> =>
  page.locator("#status").getAttribute("data-status");
const texts = (from: number, to: number): string[] =>
  Array.from({ length: to - from + 1 }, (_, i) => `line ${from + i}`);

async function disconnect(jobId: string): Promise<void> {
  const response = await fetch(`${stack.workerUrl}/internal/jobs/${jobId}/disconnect`, {
    method: "POST",
    headers: { Authorization: `Bearer ${stack.runnerToken}` },
  });
  expect(await response.json()).toEqual({ disconnected: 1 });
}

describe("the example app in chromium", () => {
  it("shows every line once across a server-side close (fetch stream, Bearer token)", async () => {
    const jobId = uniqueJobId("example-fetch");
    await createJob(redis, jobId, USER);
    const writer = streamWriter(redis, jobId);
    await writer.append(...texts(1, 5));
    const { page, errors } = await openExample(jobId);
    await expect.poll(() => shown(page), WAIT).toEqual(texts(1, 5));
    expect(await statusOf(page)).toBe("live");

    await disconnect(jobId);
    await writer.append(...texts(6, 8));
    await expect
      .poll(() => page.locator("#status").textContent(), WAIT)
      .toBe("live (reconnected 1×)");
    await expect.poll(() => shown(page), WAIT).toEqual(texts(1, 8));
    await writer.end("ready", "line 9");
    await expect.poll(() => statusOf(page), WAIT).toBe("ready");
    expect(await shown(page)).toEqual(texts(1, 9));
    expect(errors).toEqual([]);
  });

  it("follows a real build with EventSource and a stream ticket", async () => {
    const response = await fetch(`${stack.workerUrl}/api/jobs`, {
      method: "POST",
      headers: {
        Authorization: `Bearer ${stack.signToken(USER)}`,
        "Content-Type": "application/json",
      },
      body: JSON.stringify({
        steps: [
          {
            name: "Counting",
            phase: "build",
            command: 'for i in $(seq 1 20); do echo "count $i"; done; echo oops >&2; exit 3',
          },
        ],
      }),
    });
    expect(response.status).toBe(201);
    const { id } = (await response.json()) as { id: string };
    const { page, errors } = await openExample(id, { transport: "eventsource" });
    await expect.poll(() => statusOf(page), WAIT).toBe("failed");
    const lines = await shown(page);
    expect(lines.filter((text) => text.startsWith("count "))).toEqual(
      Array.from({ length: 20 }, (_, i) => `count ${i + 1}`),
    );
    expect(await page.locator("#lines > .line.stderr").allTextContents()).toEqual(["oops"]);
    expect(errors).toEqual([]);
  });

  it("starts from the newest lines and loads older ones on demand", async () => {
    const jobId = uniqueJobId("example-tail");
    await createJob(redis, jobId, USER);
    const writer = streamWriter(redis, jobId);
    await writer.append(...texts(1, 10));
    const { page, errors } = await openExample(jobId, { tail: "4" });
    await expect.poll(() => shown(page), WAIT).toEqual(texts(7, 10));
    await writer.append("line 11");
    await expect.poll(() => shown(page), WAIT).toEqual(texts(7, 11));
    await page.locator("#older").click();
    await expect.poll(() => shown(page), WAIT).toEqual(texts(3, 11));
    await page.locator("#older").click();
    await expect.poll(() => shown(page), WAIT).toEqual(texts(1, 11));
    expect(await page.locator("#older").isHidden()).toBe(true);
    await writer.end("ready");
    await expect.poll(() => statusOf(page), WAIT).toBe("ready");
    expect(errors).toEqual([]);
  });
});
