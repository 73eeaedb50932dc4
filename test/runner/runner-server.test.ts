import { randomBytes } from "node:crypto";
import { describe, expect, it } from "vitest";
import { type AesKey, importJobSecretsKey } from "../../src/shared/job-secrets.ts";
import {
  type RunRequest,
  type SealedRunRequest,
  sealRunRequest,
} from "../../src/shared/job-spec.ts";
import {
  createRunnerApp as createRunnerAppWithKey,
  type RunnerServerOptions,
} from "../../worker-build-runner/server.ts";

const TOKEN = "runner-token-for-tests-0123456789";
const plain: RunRequest = {
  job_id: "job_server_test",
  owner: "user_x",
  spec: {
    steps: [{ name: "Build", phase: "build", command: "true" }],
    env: { NODE_ENV: "test" },
    secrets: { DEPLOY_TOKEN: "deploy-token-value-5f1c2e" },
    files: {},
  },
};
const key: AesKey = await importJobSecretsKey(randomBytes(32).toString("base64"));
const request: SealedRunRequest = await sealRunRequest(key, plain);

const createRunnerApp = (options: Omit<RunnerServerOptions, "jobSecretsKey">) =>
  createRunnerAppWithKey({ ...options, jobSecretsKey: key });

async function post(
  app: ReturnType<typeof createRunnerAppWithKey>["app"],
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
  it("accepts a job with 202, opens its sealed env and secrets, and runs it", async () => {
    const started: RunRequest[] = [];
    const runner = createRunnerApp({
      runnerToken: TOKEN,
      concurrency: 1,
      start: async (r) => {
        started.push(r);
        return { run: Promise.resolve() };
      },
    });
    expect(JSON.stringify(request)).not.toContain("deploy-token-value-5f1c2e");
    const response = await post(runner.app, request);
    expect(response.status).toBe(202);
    await runner.idle();
    expect(started).toEqual([plain]);
  });

  it.each([
    ["sealed with another key", "other-key"],
    ["sealed for another job", "other-job"],
  ])("refuses values %s with 400 sealed_values_invalid, running nothing", async (_case, how) => {
    const otherKey = await importJobSecretsKey(randomBytes(32).toString("base64"));
    const body =
      how === "other-key"
        ? await sealRunRequest(otherKey, plain)
        : { ...request, job_id: "job_someone_else" };
    let ran = 0;
    const runner = createRunnerApp({
      runnerToken: TOKEN,
      concurrency: 1,
      start: async () => {
        ran++;
        return { run: Promise.resolve() };
      },
    });
    const response = await post(runner.app, body);
    expect(response.status).toBe(400);
    expect(await response.json()).toMatchObject({ error: { code: "sealed_values_invalid" } });
    expect(ran).toBe(0);
  });

  it("refuses a request with env or secrets in the clear", async () => {
    const runner = createRunnerApp({
      runnerToken: TOKEN,
      concurrency: 1,
      start: async () => ({ run: Promise.resolve() }),
    });
    const response = await post(runner.app, {
      ...request,
      spec: { ...request.spec, secrets: plain.spec.secrets },
    });
    expect(response.status).toBe(400);
    expect(await response.json()).toMatchObject({ error: { code: "invalid_job" } });
  });

  it("answers 503 with Retry-After at its concurrency limit, and takes jobs again once one ends", async () => {
    let finish: () => void = () => undefined;
    const runner = createRunnerApp({
      runnerToken: TOKEN,
      concurrency: 1,
      start: async () => ({ run: new Promise<void>((resolve) => (finish = resolve)) }),
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
      start: async () => ({ run: Promise.resolve() }),
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
    ["an unknown field", { ...request, extra: true }, "invalid_job"],
  ])("rejects %s with 400", async (_case, body, code) => {
    const runner = createRunnerApp({
      runnerToken: TOKEN,
      concurrency: 1,
      start: async () => ({ run: Promise.resolve() }),
    });
    const response = await post(runner.app, body);
    expect(response.status).toBe(400);
    expect(await response.json()).toMatchObject({ error: { code } });
  });

  it("refuses a body over 1 MiB with 413 before parsing it", async () => {
    const runner = createRunnerApp({
      runnerToken: TOKEN,
      concurrency: 1,
      start: async () => ({ run: Promise.resolve() }),
    });
    const response = await post(runner.app, `{"pad":"${"x".repeat(2 * 1024 * 1024)}"}`);
    expect(response.status).toBe(413);
    expect(await response.json()).toMatchObject({ error: { code: "too_large" } });
  });

  it("refuses a short token at creation", () => {
    expect(() =>
      createRunnerApp({
        runnerToken: "short",
        concurrency: 1,
        start: async () => ({ run: Promise.resolve() }),
      }),
    ).toThrow(/RUNNER_TOKEN/);
  });

  it("answers 503 when the job could not be claimed, so the queue delivers it again", async () => {
    const runner = createRunnerApp({
      runnerToken: TOKEN,
      concurrency: 1,
      logger: { warn: () => undefined, error: () => undefined },
      start: async () => Promise.reject(new Error("Redis unreachable")),
    });
    const response = await post(runner.app, request);
    expect(response.status).toBe(503);
    expect(response.headers.get("Retry-After")).toMatch(/^\d+$/);
    expect(await response.json()).toMatchObject({ error: { code: "claim_failed" } });
    expect(runner.active).toBe(0);
  });

  it("acknowledges a job that will not run here without running it", async () => {
    const runner = createRunnerApp({
      runnerToken: TOKEN,
      concurrency: 1,
      start: async () => ({ skipped: "the job is already ready" }),
    });
    const response = await post(runner.app, request);
    expect(response.status).toBe(202);
    expect(await response.json()).toMatchObject({ accepted: false });
    expect(runner.active).toBe(0);
  });
});
