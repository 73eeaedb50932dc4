import type { TestProject } from "vitest/node";
import { startUpstashBridge } from "../../tools/upstash-bridge/bridge.ts";
import { startRedisServer } from "../../tools/upstash-bridge/redis-server.ts";

declare module "vitest" {
  export interface ProvidedContext {
    upstashUrl: string;
    upstashToken: string;
    /** The redis-server behind the bridge, for tests that start a bridge of their own. */
    redisUrl: string;
    /** An S3-compatible server (worker project only). */
    s3Endpoint: string;
    /** The public key Clerk-auth tests verify with (SPKI PEM), as CLERK_JWT_KEY. */
    clerkJwtKey: string;
    /** Its private key as a JSON JWK, for test/support/tokens.ts to sign session tokens. */
    clerkSigningJwk: string;
    /** A local Clerk Backend API (test/support/clerk-api-server.ts) serving that key's JWKS, as CLERK_API_URL. */
    clerkApiUrl: string;
    /** The Worker's JOB_SECRETS_KEY in the worker project, shared with its test runner service. */
    jobSecretsKey: string;
    /** The runner service of the worker project (test/support/test-runner-server.ts). */
    runnerUrl: string;
  }
}

// One real redis-server and one Upstash bridge per test project. Tests keep apart by using
// their own job ids (keys), never by flushing the database.
export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const redis = await startRedisServer();
  const token = `test-${crypto.randomUUID()}`;
  const bridge = await startUpstashBridge({ redisUrl: redis.url, token });
  project.provide("upstashUrl", bridge.url);
  project.provide("upstashToken", token);
  project.provide("redisUrl", redis.url);
  return async () => {
    await bridge.close();
    await redis.stop();
  };
}
