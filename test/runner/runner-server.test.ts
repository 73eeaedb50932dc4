import { describe, expect, it } from "vitest";
import type { RunRequest } from "../../src/shared/job-spec.ts";
import { createRunnerApp } from "../../worker-build-runner/server.ts";

const TOKEN = "runner-token-for-tests-0123456789";
const request: RunRequest = {
  job_id: "job_server_test",
  owner: "user_x",
  spec: {
    steps: [{ name: "Build", phase: "build", command: "true" }],
    env: {},
    secrets: {},
    files: {},
  },
};

async function post(
  app: ReturnType<typeof createRunnerApp>["app"],
  body: unknown,
  token = TOKEN,
): Promise<Response> {
  return app.request("/jobs", {
    method: "POST",
    headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/json" },
    body: typeof body === "string" ? body : JSON.stringify(body),
  });
}

describe("the runner service", () => {
  it("accepts a job with 202 and runs it", async () => {
    const started: string[] = [];
    const runner = createRunnerApp({
      runnerToken: TOKEN,
      concurrency: 1,
      run: async (r) => void started.push(r.job_id),
    });
    const response = await post(runner.app, request);
    expect(response.status).toBe(202);
    await runner.idle();
    expect(started).toEqual(["job_server_test"]);
  });

  it("answers 503 with Retry-After at its concurrency limit, and takes jobs again once one ends", async () => {
    let finish: () => void = () => undefined;
    const runner = createRunnerApp({
      runnerToken: TOKEN,
      concurrency: 1,
      run: () => new Promise<void>((resolve) => (finish = resolve)),
    });
    expect((await post(runner.app, request)).status).toBe(202);
    const busy = await post(runner.app, request);
    expect(busy.status).toBe(503);
    expect(busy.headers.get("Retry-After")).toMatch(/^\d+$/);
    expect(await busy.json()).toMatchObject({ error: { code: "runner_busy" } });
    finish();
    await runner.idle();
    expect((await post(runner.app, request)).status).toBe(202);
    finish();
  });

  it.each(["", "wrong", `${TOKEN}x`])("refuses the token %j with 401", async (token) => {
    const runner = createRunnerApp({
      runnerToken: TOKEN,
      concurrency: 1,
      run: async () => undefined,
    });
    const response = await post(runner.app, request, token);
    expect(response.status).toBe(401);
    expect(await response.json()).toMatchObject({ error: { code: "unauthenticated" } });
  });

  it.each([
    ["not JSON", "{", "invalid_json"],
    ["no steps", { ...request, spec: { ...request.spec, steps: [] } }, "invalid_job"],
    ["a bad job id", { ...request, job_id: "../x" }, "invalid_job"],
    [
      "a file path outside the project",
      { ...request, spec: { ...request.spec, files: { "../etc/passwd": "x" } } },
      "invalid_job",
    ],
    [
      "a bad env name",
      { ...request, spec: { ...request.spec, env: { "A-B": "x" } } },
      "invalid_job",
    ],
    ["an unknown field", { ...request, extra: true }, "invalid_job"],
  ])("rejects %s with 400", async (_case, body, code) => {
    const runner = createRunnerApp({
      runnerToken: TOKEN,
      concurrency: 1,
      run: async () => undefined,
    });
    const response = await post(runner.app, body);
    expect(response.status).toBe(400);
    expect(await response.json()).toMatchObject({ error: { code } });
  });

  it("refuses a body over 1 MiB with 413 before parsing it", async () => {
    const runner = createRunnerApp({
      runnerToken: TOKEN,
      concurrency: 1,
      run: async () => undefined,
    });
    const response = await post(runner.app, `{"pad":"${"x".repeat(2 * 1024 * 1024)}"}`);
    expect(response.status).toBe(413);
    expect(await response.json()).toMatchObject({ error: { code: "too_large" } });
  });

  it("refuses a short token at creation", () => {
    expect(() =>
      createRunnerApp({ runnerToken: "short", concurrency: 1, run: async () => undefined }),
    ).toThrow(/RUNNER_TOKEN/);
  });
});
