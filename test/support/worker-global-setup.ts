import { spawn } from "node:child_process";
import { generateKeyPairSync } from "node:crypto";
import { once } from "node:events";
import { createInterface } from "node:readline";
import type { TestProject } from "vitest/node";
import { startClerkApiServer } from "./clerk-api-server.ts";

// The workerd project's setup runs the bridge (with its own redis-server) as a separate Node
// process: this project's Vite resolves modules for workerd, not for Node, so the bridge's
// Node-only dependencies are kept out of it. Workers reach it over loopback, as they would
// reach Upstash over the internet.
export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const token = `test-${crypto.randomUUID()}`;
  const child = spawn(process.execPath, ["tools/upstash-bridge/cli.ts", "--port", "0", "--token", token], {
    stdio: ["pipe", "pipe", "inherit"],
  });
  const lines = createInterface({ input: child.stdout });
  const url = await new Promise<string>((resolve, reject) => {
    child.once("exit", (code) => reject(new Error(`the Upstash bridge exited with code ${code} before it was ready`)));
    lines.on("line", (line) => {
      const match = /^UPSTASH_REDIS_REST_URL=(\S+)$/.exec(line);
      if (match?.[1]) resolve(match[1]);
    });
  });
  project.provide("upstashUrl", url);
  project.provide("upstashToken", token);
  project.provide("redisUrl", "");
  // A Clerk-like instance key: the Worker gets the public half as CLERK_JWT_KEY (networkless
  // verification); tests sign session tokens inside workerd with the private half.
  const clerkKeys = generateKeyPairSync("rsa", { modulusLength: 2048 });
  project.provide("clerkJwtKey", clerkKeys.publicKey.export({ type: "spki", format: "pem" }).toString());
  project.provide("clerkSigningJwk", JSON.stringify(clerkKeys.privateKey.export({ format: "jwk" })));
  // The same key as a JWKS behind a local Clerk Backend API, for the CLERK_SECRET_KEY mode. Its
  // kid is the one test/support/tokens.ts signs with by default.
  const clerkApi = await startClerkApiServer({
    keys: [{ ...clerkKeys.publicKey.export({ format: "jwk" }), kid: "ins_test", alg: "RS256", use: "sig" }],
  });
  project.provide("clerkApiUrl", clerkApi.url);
  // An S3-compatible server for the archive's S3 store, in its own process like the bridge.
  const s3 = spawn(process.execPath, ["test/support/s3-server.ts"], { stdio: ["ignore", "pipe", "inherit"] });
  const s3Endpoint = await new Promise<string>((resolve, reject) => {
    s3.once("exit", (code) => reject(new Error(`the S3 test server exited with code ${code} before it was ready`)));
    createInterface({ input: s3.stdout }).on("line", (line) => {
      const match = /^S3_ENDPOINT=(\S+)$/.exec(line);
      if (match?.[1]) resolve(match[1]);
    });
  });
  project.provide("s3Endpoint", s3Endpoint);
  return async () => {
    const exited = once(child, "exit");
    const s3Exited = once(s3, "exit");
    child.kill("SIGTERM");
    s3.kill("SIGTERM");
    await Promise.all([exited, s3Exited, clerkApi.close()]);
  };
}
