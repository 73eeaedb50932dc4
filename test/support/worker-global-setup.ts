import { generateKeyPairSync, randomBytes } from "node:crypto";
import type { TestProject } from "vitest/node";
import { spawnNodeReady } from "../../tools/dev/spawn-ready.ts";
import { startClerkApiServer } from "./clerk-api-server.ts";

/** The Worker's RUNNER_TOKEN in the workerd tests (vitest.config.ts). */
export const TEST_RUNNER_TOKEN = "test-runner-token";

// The workerd project's setup runs the bridge (with its own redis-server) as a separate Node
// process: this project's Vite resolves modules for workerd, not for Node, so the bridge's
// Node-only dependencies are kept out of it. Workers reach it over loopback, as they would
// reach Upstash over the internet.
export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const token = `test-${crypto.randomUUID()}`;
  const bridge = await spawnNodeReady({
    args: ["tools/upstash-bridge/cli.ts", "--port", "0", "--token", token],
    ready: /^UPSTASH_REDIS_REST_URL=(\S+)$/,
    what: "the Upstash bridge",
  });
  const url = bridge.match[1] ?? "";
  project.provide("upstashUrl", url);
  project.provide("upstashToken", token);
  project.provide("redisUrl", "");
  // A Clerk-like instance key: the Worker gets the public half as CLERK_JWT_KEY (networkless
  // verification); tests sign session tokens inside workerd with the private half.
  const clerkKeys = generateKeyPairSync("rsa", { modulusLength: 2048 });
  project.provide(
    "clerkJwtKey",
    clerkKeys.publicKey.export({ type: "spki", format: "pem" }).toString(),
  );
  project.provide(
    "clerkSigningJwk",
    JSON.stringify(clerkKeys.privateKey.export({ format: "jwk" })),
  );
  // The same key as a JWKS behind a local Clerk Backend API, for the CLERK_SECRET_KEY mode. Its
  // kid is the one test/support/tokens.ts signs with by default.
  const clerkApi = await startClerkApiServer({
    keys: [
      {
        ...clerkKeys.publicKey.export({ format: "jwk" }),
        kid: "ins_test",
        alg: "RS256",
        use: "sig",
      },
    ],
  });
  project.provide("clerkApiUrl", clerkApi.url);
  // An S3-compatible server for the archive's S3 store, in its own process like the bridge.
  const s3 = await spawnNodeReady({
    args: ["test/support/s3-server.ts"],
    ready: /^S3_ENDPOINT=(\S+)$/,
    what: "the S3 test server",
  });
  const s3Endpoint = s3.match[1] ?? "";
  project.provide("s3Endpoint", s3Endpoint);
  // The runner service the dispatcher hands jobs to (test/support/test-runner-server.ts), with
  // the key the Worker seals jobs with.
  const jobSecretsKey = randomBytes(32).toString("base64");
  project.provide("jobSecretsKey", jobSecretsKey);
  const runner = await spawnNodeReady({
    args: ["test/support/test-runner-server.ts"],
    env: { ...process.env, RUNNER_TOKEN: TEST_RUNNER_TOKEN, JOB_SECRETS_KEY: jobSecretsKey },
    ready: /^RUNNER_URL=(\S+)$/,
    what: "the test runner service",
  });
  project.provide("runnerUrl", runner.match[1] ?? "");
  return async () => {
    await Promise.all([bridge.stop(), s3.stop(), runner.stop(), clerkApi.close()]);
  };
}
