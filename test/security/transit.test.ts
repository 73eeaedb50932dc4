import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { freePort, type Stack, startStack } from "../../tools/dev/stack.ts";
import { type RecordingProxy, startRecordingProxy } from "../support/recording-proxy.ts";

// A job's secrets on their way from the Worker to the runner, through the real stack: the
// Worker's requests to the runner pass a proxy that keeps every byte, as a request log in front
// of the runner would. The body the dispatcher sends is the Queue message as it was queued.
let stack: Stack;
let proxy: RecordingProxy;
let token = "";

beforeAll(async () => {
  const runnerPort = await freePort();
  proxy = await startRecordingProxy(runnerPort);
  stack = await startStack({
    runnerOutput: "ignore",
    runnerPort,
    workerVars: { RUNNER_URL: proxy.url },
  });
  token = stack.signToken("user_transit");
}, 120_000);

afterAll(async () => {
  await stack?.stop();
  await proxy?.close();
}, 60_000);

async function api(path: string, init: RequestInit = {}): Promise<Response> {
  return fetch(`${stack.workerUrl}${path}`, {
    ...init,
    headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/json" },
  });
}

async function finished(jobId: string): Promise<{ status: string; log: string }> {
  for (let i = 0; i < 600; i++) {
    const job = (await (await api(`/api/jobs/${jobId}`)).json()) as { status: string };
    if (job.status === "ready" || job.status === "failed") {
      const log = await (await api(`/api/jobs/${jobId}/logs.txt`)).text();
      return { status: job.status, log };
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`job ${jobId} did not end`);
}

describe("a job's secrets in transit", () => {
  it("never cross to the runner in the clear, and the build still gets them", async () => {
    const secret = `transit-secret-${randomUUID()}`;
    const envValue = `transit-env-${randomUUID()}`;
    const response = await api("/api/jobs", {
      method: "POST",
      body: JSON.stringify({
        steps: [
          {
            name: "Check",
            phase: "build",
            // The build shows what it got, reversed: the log masks the values themselves, and
            // the command must not hold them either.
            command: `printf '%s %s\\n' "$DEPLOY_KEY" "$PLAIN_SETTING" | rev; echo values-arrived`,
          },
        ],
        env: { PLAIN_SETTING: envValue },
        secrets: { DEPLOY_KEY: secret },
      }),
    });
    expect(response.status).toBe(201);
    const { id } = (await response.json()) as { id: string };
    const { status, log } = await finished(id);
    expect(status).toBe("ready");
    const reversed = (text: string) => [...text].reverse().join("");
    expect(log).toContain(`${reversed(envValue)} ${reversed(secret)}`);

    const sent = proxy.sent();
    // The request went through the proxy...
    expect(sent).toContain("POST /jobs");
    expect(sent).toContain(id);
    // ...and holds neither value, as is or in base64.
    for (const value of [secret, envValue]) {
      expect(sent).not.toContain(value);
      expect(sent).not.toContain(Buffer.from(value).toString("base64").slice(0, 16));
    }
    // The steps are not sealed (only env and secrets are).
    expect(sent).toContain("values-arrived");
  });
});
