import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { type Stack, startStack } from "../../tools/dev/stack.ts";
import { type StackUser, stackUser } from "../support/stack-client.ts";

// The whole product on loopback with the production sandbox path: the runner process with
// SANDBOX=e2b, the E2B adapter and the unchanged SDK against tools/e2b-local, which runs the
// build in the local sandbox.
let stack: Stack;
let user: StackUser;

beforeAll(async () => {
  stack = await startStack({ runnerOutput: "ignore", sandbox: "e2b-local" });
  user = stackUser(stack, "user_e2b_stack");
}, 120_000);

afterAll(async () => {
  await stack?.stop();
}, 60_000);

function e2bLocal() {
  if (stack.e2bLocal === undefined) return expect.unreachable("the stack has no e2b-local");
  return stack.e2bLocal;
}

describe("a job in an E2B sandbox (e2b-local) through the whole stack", () => {
  it("builds, streams its lines with the secret masked, and kills the sandbox at the end", async () => {
    const secret = "e2b-stack-Secret-4d1f9a";
    const jobId = await user.createJob({
      secrets: { API_TOKEN: secret },
      files: { "build.sh": 'echo "building in $(pwd)"; echo "token $API_TOKEN"; echo oops >&2' },
      steps: [{ name: "Building", phase: "build", command: "sh build.sh" }],
    });
    const stream = user.follow(jobId);
    expect(await stream.done).toBe("ready");
    // stdout and stderr are two pipes: their lines keep their order within each, not between.
    const texts = (source: string) =>
      stream.lines.filter((line) => line.source === source).map((line) => line.text);
    expect(texts("system")).toEqual([
      "--- Preparing the sandbox ---",
      "--- Building ---",
      expect.stringMatching(/^Building succeeded in /),
      "--- Build finished ---",
    ]);
    expect(texts("stdout")).toEqual([
      expect.stringMatching(/^building in \/\S+\/app$/),
      "token [REDACTED]",
    ]);
    expect(texts("stderr")).toEqual(["oops"]);
    expect(JSON.stringify(stream.lines)).not.toContain(secret);
    expect(e2bLocal().runningSandboxes()).toHaveLength(0);
  });

  it("when the runner is interrupted mid-build, it kills the sandbox and ends the log saying why", async () => {
    const jobId = await user.createJob({
      steps: [{ name: "Building", phase: "build", command: "echo started; sleep 120; echo never" }],
    });
    const stream = user.follow(jobId);
    await vi.waitFor(() => expect(stream.lines.map((line) => line.text)).toContain("started"), {
      timeout: 60_000,
      interval: 100,
    });
    expect(e2bLocal().runningSandboxes()).toHaveLength(1);
    await stack.runner.stop("SIGINT");
    expect(stack.runner.child.exitCode).toBe(130);
    expect(e2bLocal().runningSandboxes()).toHaveLength(0);
    expect(await stream.done).toBe("failed");
    expect(stream.lines.map((line) => line.text)).not.toContain("never");
    expect(stream.lines.at(-1)).toMatchObject({
      source: "system",
      text: "The build was stopped: the runner is shutting down",
    });
    await stack.restartRunner();
  });
});
