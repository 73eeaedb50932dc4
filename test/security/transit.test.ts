import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { freePort, type Stack, startStack } from "../../tools/dev/stack.ts";
import { type RecordingProxy, startRecordingProxy } from "../support/recording-proxy.ts";
import { type UserClient, userClient } from "./jobs.ts";

// A job's secrets on their way from the Worker to the runner, through the real stack: the
// Worker's requests to the runner pass a proxy that keeps every byte, as a request log in front
// of the runner would. The body the dispatcher sends is the Queue message as it was queued.
let stack: Stack;
let proxy: RecordingProxy;
let user: UserClient;

beforeAll(async () => {
  const runnerPort = await freePort();
  proxy = await startRecordingProxy(runnerPort);
  stack = await startStack({
    runnerOutput: "ignore",
    runnerPort,
    workerVars: { RUNNER_URL: proxy.url },
  });
  user = userClient(stack, "user_transit");
}, 120_000);

afterAll(async () => {
  await stack?.stop();
  await proxy?.close();
}, 60_000);

describe("a job's secrets in transit", () => {
  it("never cross to the runner in the clear, and the build still gets them", async () => {
    const secret = `transit-secret-${randomUUID()}`;
    const envValue = `transit-env-${randomUUID()}`;
    const id = await user.submit({
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
    });
    const { status, log } = await user.finished(id);
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
