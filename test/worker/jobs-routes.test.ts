import { env } from "cloudflare:workers";
import { beforeAll, describe, expect, it } from "vitest";
import type { LogLine } from "../../src/shared/entry.ts";
import { createJob, jobWithLog, streamWriter, testRedis } from "../support/jobs.ts";
import { uniqueJobId } from "../support/redis.ts";
import { asRunner, expiredToken, getWith, postWith, testUser } from "../support/worker-client.ts";

const redis = testRedis(env);
const owner = testUser("user_routes_owner");
const stranger = testUser("user_routes_stranger");

interface Page {
  lines: LogLine[];
  has_more: boolean;
  cursors: { before: string | null; after: string | null };
}
const page = async (path: string): Promise<Page> => {
  const response = await owner.get(path);
  expect(response.status).toBe(200);
  return (await response.json()) as Page;
};

describe("GET /api/jobs/:id", () => {
  it("shows its owner the job's status and times", async () => {
    const jobId = uniqueJobId("status");
    const job = await createJob(redis, jobId, owner.id, "running");
    const response = await owner.get(`/api/jobs/${jobId}`);
    expect(response.status).toBe(200);
    expect(await response.json()).toEqual(job);
  });

  it("answers anyone else exactly as for a job that does not exist", async () => {
    const jobId = uniqueJobId("not-yours");
    await createJob(redis, jobId, owner.id);
    const notYours = await stranger.get(`/api/jobs/${jobId}`);
    const missing = await stranger.get(`/api/jobs/${uniqueJobId("missing")}`);
    expect(notYours.status).toBe(404);
    expect(missing.status).toBe(404);
    expect(await notYours.json()).toEqual(await missing.json());
  });

  it.each([
    ["no token", null, "unauthenticated"],
    ["an expired token", "expired", "token_expired"],
    ["a malformed token", "not.a.jwt", "invalid_token"],
  ])("answers %s with 401", async (_case, token, code) => {
    const jobId = uniqueJobId("auth");
    await createJob(redis, jobId, owner.id);
    const response = await getWith(
      token === "expired" ? await expiredToken(owner.id) : token,
      `/api/jobs/${jobId}`,
    );
    expect(response.status).toBe(401);
    expect(await response.json()).toMatchObject({ error: { code } });
  });

  it.each(["bad*id", "a:b", "a%2Fb", "%20", "x".repeat(65), "-leading-dash", "caf%C3%A9"])(
    "rejects the job id %j with 400 before touching Redis",
    async (id) => {
      const response = await owner.get(`/api/jobs/${id}`);
      expect(response.status).toBe(400);
      expect(await response.json()).toMatchObject({ error: { code: "invalid_job_id" } });
    },
  );
});

describe("GET /api/jobs/:id/logs", () => {
  // 12 lines in 3 entries of 4: page boundaries fall inside entries and across them.
  let jobId = "";
  let cursors: string[] = [];
  const texts = (p: Page): string[] => p.lines.map((line) => line.text);
  const range = (from: number, to: number): string[] =>
    Array.from({ length: to - from + 1 }, (_, i) => `l${from + i}`);

  beforeAll(async () => {
    jobId = uniqueJobId("history");
    await createJob(redis, jobId, owner.id);
    const writer = streamWriter(redis, jobId);
    cursors = [];
    for (let entry = 0; entry < 3; entry++) {
      const written = await writer.append(...range(entry * 4 + 1, entry * 4 + 4));
      cursors.push(...written.cursors);
    }
  });
  const cursor = (line: number): string => cursors[line - 1] ?? "";

  it("gives the newest lines by default, oldest first, with cursors both ways", async () => {
    const p = await page(`/api/jobs/${jobId}/logs?limit=5`);
    expect(texts(p)).toEqual(range(8, 12));
    expect(p.has_more).toBe(true);
    expect(p.cursors).toEqual({ before: cursor(8), after: cursor(12) });
    expect(p.lines[0]).toMatchObject({ source: "stdout", phase: "build", cursor: cursor(8) });
  });

  it("pages backwards with before= until has_more is false", async () => {
    const second = await page(`/api/jobs/${jobId}/logs?limit=5&before=${cursor(8)}`);
    expect(texts(second)).toEqual(range(3, 7));
    expect(second.has_more).toBe(true);
    const third = await page(`/api/jobs/${jobId}/logs?limit=5&before=${second.cursors.before}`);
    expect(texts(third)).toEqual(range(1, 2));
    expect(third.has_more).toBe(false);
  });

  it("pages forwards with after= until has_more is false", async () => {
    const first = await page(`/api/jobs/${jobId}/logs?limit=5&after=${cursor(2)}`);
    expect(texts(first)).toEqual(range(3, 7));
    expect(first.has_more).toBe(true);
    const second = await page(`/api/jobs/${jobId}/logs?limit=5&after=${first.cursors.after}`);
    expect(texts(second)).toEqual(range(8, 12));
    expect(second.has_more).toBe(false);
    const empty = await page(`/api/jobs/${jobId}/logs?limit=5&after=${second.cursors.after}`);
    expect(empty.lines).toEqual([]);
    expect(empty.has_more).toBe(false);
    expect(empty.cursors.after).toBe(cursor(12));
  });

  it("reads from the start with after=0-0:0, and refuses before and after together", async () => {
    expect(texts(await page(`/api/jobs/${jobId}/logs?after=0-0:0&limit=3`))).toEqual(range(1, 3));
    // A page is read one way: with both, which way and which end `has_more` speaks of would be
    // a guess (issue 14); a client pages with one and stops at the other's line itself.
    const both = await owner.get(`/api/jobs/${jobId}/logs?after=${cursor(3)}&before=${cursor(10)}`);
    expect(both.status).toBe(400);
    expect(await both.json()).toMatchObject({ error: { code: "invalid_cursor" } });
  });

  it("returns every line once across many pages and many entries, in both directions", async () => {
    const { jobId: manyId, writer } = await jobWithLog(redis, "many", owner.id);
    const all: string[] = [];
    for (let i = 0; i < 150; i++) {
      const lines = i % 3 === 0 ? [`m${i}a`, `m${i}b`] : [`m${i}`];
      await writer.append(...lines);
      all.push(...lines);
    }
    const forward: string[] = [];
    let after = "0-0:0";
    for (let guard = 0; guard < 100; guard++) {
      const p = await page(`/api/jobs/${manyId}/logs?limit=7&after=${after}`);
      forward.push(...texts(p));
      after = p.cursors.after ?? after;
      if (!p.has_more) break;
    }
    expect(forward).toEqual(all);
    const backward: string[] = [];
    let p = await page(`/api/jobs/${manyId}/logs?limit=9`);
    backward.unshift(...texts(p));
    for (let guard = 0; guard < 100 && p.has_more; guard++) {
      p = await page(`/api/jobs/${manyId}/logs?limit=9&before=${p.cursors.before}`);
      backward.unshift(...texts(p));
    }
    expect(backward).toEqual(all);
  });

  it("defaults to 100 lines and accepts up to 500", async () => {
    const longId = uniqueJobId("long");
    await createJob(redis, longId, owner.id);
    const all = Array.from({ length: 150 }, (_, i) => `long ${i}`);
    await streamWriter(redis, longId).append(...all);
    const byDefault = await page(`/api/jobs/${longId}/logs`);
    expect(texts(byDefault)).toEqual(all.slice(50));
    expect(byDefault.has_more).toBe(true);
    const widest = await page(`/api/jobs/${longId}/logs?limit=500`);
    expect(texts(widest)).toEqual(all);
    expect(widest.has_more).toBe(false);
  });

  it.each(["0", "501", "abc", "-1", "1.5", "", "1e2", "99999"])(
    "rejects limit=%j with 400",
    async (limit) => {
      const response = await owner.get(`/api/jobs/${jobId}/logs?limit=${limit}`);
      expect(response.status).toBe(400);
      expect(await response.json()).toMatchObject({ error: { code: "invalid_limit" } });
    },
  );

  it.each([
    "before=abc",
    "after=1-0",
    "after=1-0:",
    "before=-1-0:0",
    "after=1-0:0:0",
    "before=99999999999999999-0:0",
    "after=1-0:0%0d%0a",
  ])("rejects the cursor in %s with 400", async (query) => {
    const response = await owner.get(`/api/jobs/${jobId}/logs?${query}`);
    expect(response.status).toBe(400);
    expect(await response.json()).toMatchObject({ error: { code: "invalid_cursor" } });
  });

  it("hides another user's log behind 404", async () => {
    const response = await stranger.get(`/api/jobs/${jobId}/logs`);
    expect(response.status).toBe(404);
    expect(await response.json()).toMatchObject({ error: { code: "job_not_found" } });
  });
});

describe("GET /api/jobs/:id/logs/search and ?line=", () => {
  const jobId = uniqueJobId("search");
  beforeAll(async () => {
    await createJob(redis, jobId, owner.id);
    const writer = streamWriter(redis, jobId);
    await writer.append("compiling", "npm ERR! code ELIFECYCLE", "Needle in the log");
    await writer.append("warning: big chunk", "error TS2322: Type 'string'", "needle again");
  });
  const search = async (query: string) => {
    const response = await owner.get(`/api/jobs/${jobId}/logs/search?${query}`);
    expect(response.status).toBe(200);
    return (await response.json()) as {
      matches: LogLine[];
      next: string | null;
      scanned_lines: number;
      redis_commands: number;
    };
  };

  it("finds text case-insensitively, with line numbers, and says what it cost", async () => {
    const found = await search("q=NEEDLE");
    expect(found.matches.map((line) => [line.n, line.text])).toEqual([
      [2, "Needle in the log"],
      [5, "needle again"],
    ]);
    expect(found).toMatchObject({ next: null, scanned_lines: 6 });
    expect(found.redis_commands).toBeGreaterThan(0);
    expect(found.redis_commands).toBeLessThanOrEqual(3);
  });

  it("pages with limit and next", async () => {
    const first = await search("q=needle&limit=1");
    expect(first.matches.map((line) => line.text)).toEqual(["Needle in the log"]);
    expect(first.next).not.toBeNull();
    const rest = await search(`q=needle&limit=1&after=${first.next}`);
    expect(rest.matches.map((line) => line.text)).toEqual(["needle again"]);
  });

  it("finds the error lines with kind=error", async () => {
    const errors = await search("kind=error");
    expect(errors.matches.map((line) => line.text)).toEqual([
      "npm ERR! code ELIFECYCLE",
      "error TS2322: Type 'string'",
    ]);
  });

  it("opens a page at a line number", async () => {
    const page = await owner.get(`/api/jobs/${jobId}/logs?line=4&limit=2`);
    expect(page.status).toBe(200);
    const body = (await page.json()) as Page;
    expect(body.lines.map((line) => [line.n, line.text])).toEqual([
      [4, "error TS2322: Type 'string'"],
      [5, "needle again"],
    ]);
    const missing = await owner.get(`/api/jobs/${jobId}/logs?line=99`);
    expect(missing.status).toBe(404);
    expect(await missing.json()).toMatchObject({ error: { code: "line_not_found" } });
  });

  it.each([
    ["logs/search", "invalid_query"],
    ["logs/search?q=", "invalid_query"],
    [`logs/search?q=${"x".repeat(201)}`, "invalid_query"],
    ["logs/search?kind=warning", "invalid_kind"],
    ["logs/search?q=a&limit=0", "invalid_limit"],
    ["logs/search?q=a&limit=101", "invalid_limit"],
    ["logs/search?q=a&limit=ten", "invalid_limit"],
    ["logs/search?q=a&after=nope", "invalid_cursor"],
    ["logs?line=-1", "invalid_line"],
    ["logs?line=1&after=1-0:0", "invalid_line"],
  ])("answers %s with 400 %s", async (path, code) => {
    const response = await owner.get(`/api/jobs/${jobId}/${path}`);
    expect(response.status).toBe(400);
    expect(await response.json()).toMatchObject({ error: { code } });
  });

  it("hides another user's log behind 404", async () => {
    const response = await stranger.get(`/api/jobs/${jobId}/logs/search?q=needle`);
    expect(response.status).toBe(404);
  });
});

describe("POST /api/jobs", () => {
  const post = (body: string) => owner.post("/api/jobs", body);

  it("creates a queued job owned by the caller, and stores no env or secret", async () => {
    const spec = {
      steps: [{ name: "Build", phase: "build", command: "npm run build" }],
      env: { NODE_ENV: "production" },
      secrets: { API_TOKEN: "route-test-secret-value" },
    };
    const response = await post(JSON.stringify(spec));
    expect(response.status).toBe(201);
    const job = (await response.json()) as {
      id: string;
      status: string;
      owner: string;
      links: { stream: string };
    };
    expect(job).toMatchObject({ status: "queued", owner: "user_routes_owner" });
    expect(job.links.stream).toBe(`/api/jobs/${job.id}/logs/stream`);
    const stored = (await redis.get<string>(`job:${job.id}:meta`)) ?? "";
    expect(stored).not.toContain("route-test-secret-value");
    expect(stored).not.toContain("production");
    expect((await owner.get(`/api/jobs/${job.id}`)).status).toBe(200);
    expect((await stranger.get(`/api/jobs/${job.id}`)).status).toBe(404);
  });

  it("names the job by its title, else by its first step", async () => {
    const steps = [{ name: "Installing dependencies", phase: "install", command: "npm ci" }];
    const titled = await post(JSON.stringify({ title: "Deploy my-app", steps }));
    const untitled = await post(JSON.stringify({ steps }));
    for (const [response, title] of [
      [titled, "Deploy my-app"],
      [untitled, "Installing dependencies"],
    ] as const) {
      expect(response.status).toBe(201);
      const { id } = (await response.json()) as { id: string };
      expect(await (await owner.get(`/api/jobs/${id}`)).json()).toMatchObject({ title });
    }
  });

  it.each([
    ["not JSON", "{", "invalid_json"],
    ["no steps", JSON.stringify({ steps: [] }), "invalid_job"],
    [
      "a bad phase",
      JSON.stringify({ steps: [{ name: "x", phase: "Build!", command: "true" }] }),
      "invalid_job",
    ],
    [
      "a file outside the project",
      JSON.stringify({
        steps: [{ name: "x", phase: "build", command: "true" }],
        files: { "../x": "" },
      }),
      "invalid_job",
    ],
    [
      "an unknown field",
      JSON.stringify({ steps: [{ name: "x", phase: "build", command: "true" }], repo: "x" }),
      "invalid_job",
    ],
  ])("rejects %s with 400", async (_case, body, code) => {
    const response = await post(body);
    expect(response.status).toBe(400);
    expect(await response.json()).toMatchObject({ error: { code } });
  });

  it("refuses a body over its limit with 413 before parsing it", async () => {
    const response = await post(JSON.stringify({ steps: [], pad: "x".repeat(600 * 1024) }));
    expect(response.status).toBe(413);
    expect(await response.json()).toMatchObject({ error: { code: "too_large" } });
  });

  it("needs a session", async () => {
    expect((await postWith(null, "/api/jobs", "{}")).status).toBe(401);
  });
});

describe("POST /internal/jobs/:id/disconnect", () => {
  it("closes the job's live streams cleanly, so viewers reconnect and resume", async () => {
    const jobId = uniqueJobId("disconnect");
    await createJob(redis, jobId, owner.id);
    const stream = await owner.get(`/api/jobs/${jobId}/logs/stream`);
    const reader = stream.body?.getReader();
    await reader?.read();
    const response = await asRunner(jobId, "disconnect");
    expect(await response.json()).toEqual({ disconnected: 1 });
    let done = false;
    while (!done && reader) done = (await reader.read()).done;
    expect(done).toBe(true);
    expect((await asRunner(jobId, "disconnect", { token: null })).status).toBe(401);
  });
});

describe("POST /internal/jobs/:id/wake", () => {
  const wake = (id: string, token?: string): Promise<Response> =>
    asRunner(id, "wake", { token: token ?? null });

  it("wakes the job's object for the runner", async () => {
    expect((await wake(uniqueJobId("wake"), env.RUNNER_TOKEN)).status).toBe(204);
  });

  it.each([undefined, "wrong-token", `${"test-runner-token"}x`, ""])(
    "refuses the token %j with 401",
    async (token) => {
      const response = await wake(uniqueJobId("wake"), token);
      expect(response.status).toBe(401);
      expect(await response.json()).toMatchObject({ error: { code: "unauthenticated" } });
    },
  );

  it("refuses a user's session token", async () => {
    expect((await wake(uniqueJobId("wake"), await owner.token())).status).toBe(401);
  });

  it("rejects a malformed job id with 400", async () => {
    const response = await wake("bad*id", env.RUNNER_TOKEN);
    expect(response.status).toBe(400);
  });
});
