// npm start: the system on this machine with embedded defaults. Today that is the runner's
// log pipeline end to end: a real redis-server behind the Upstash bridge, a demo build run as
// real child processes, its output sanitized and appended to the job's Redis Stream, and the
// stream read back the way a viewer's history page reads it. Ctrl-C stops everything.
import { spawn } from "node:child_process";
import { decodeStreamReply } from "../../src/shared/entry.ts";
import { logStreamKey } from "../../src/shared/keys.ts";
import { createSecretValues } from "../../src/shared/sanitize/secret-values.ts";
import { startUpstashBridge } from "../upstash-bridge/bridge.ts";
import { startRedisServer } from "../upstash-bridge/redis-server.ts";
import { createLogStreamer } from "../../worker-build-runner/log-streamer.ts";
import { createRedisLogWriter } from "../../worker-build-runner/redis-writer.ts";
import { createUpstashClient } from "../../worker-build-runner/redis.ts";

const DEMO_SECRET = `demo-${crypto.randomUUID()}`;
// A build that prints what real builds print: colours, a progress bar, a warning on stderr,
// and a secret from its environment, plain and base64-encoded.
const DEMO_SCRIPT = `
const wait = (ms) => new Promise((r) => setTimeout(r, ms));
(async () => {
  console.log("\\u001b[1mdemo-app@1.0.0 build\\u001b[22m");
  for (let i = 0; i <= 10; i++) { process.stdout.write("\\r[" + "#".repeat(i) + " ".repeat(10 - i) + "] " + i * 10 + "%"); await wait(80); }
  process.stdout.write("\\n");
  console.error("\\u001b[33mwarning\\u001b[39m: chunk is larger than 500 kB");
  console.log("DATABASE_URL=postgresql://app:" + process.env.DEMO_SECRET + "@db.internal/app");
  console.log("token (base64): " + Buffer.from(process.env.DEMO_SECRET).toString("base64"));
  console.log("\\u001b[32m✓\\u001b[39m built in 0.9s");
})();
`;

function run(command: string, args: string[], onStdout: (c: Uint8Array) => void, onStderr: (c: Uint8Array) => void): Promise<number> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { env: { ...process.env, DEMO_SECRET, FORCE_COLOR: "1" }, stdio: ["ignore", "pipe", "pipe"] });
    child.stdout.on("data", onStdout);
    child.stderr.on("data", onStderr);
    child.on("error", reject);
    child.on("close", (code) => resolve(code ?? 1));
  });
}

const redisServer = await startRedisServer().catch((error: unknown) => {
  console.error(`npm start: ${error instanceof Error ? error.message : String(error)}`);
  process.exit(1);
});
const token = "dev-token";
const bridge = await startUpstashBridge({ redisUrl: redisServer.url, token, port: Number(process.env.BRIDGE_PORT ?? 8079) });
const stop = async (): Promise<void> => {
  await bridge.close();
  await redisServer.stop();
  process.exit(0);
};
process.on("SIGINT", () => void stop());
process.on("SIGTERM", () => void stop());

const redis = createUpstashClient({ url: bridge.url, token });
const jobId = `demo-${Date.now()}`;
const secrets = createSecretValues([DEMO_SECRET]);
const log = createLogStreamer({ writer: createRedisLogWriter({ redis, jobId }), secrets, phase: "build" });
console.log(`redis-server ${redisServer.url}, Upstash bridge ${bridge.url} (token ${token})`);
console.log(`running demo job ${jobId}: its secret ${DEMO_SECRET.slice(0, 8)}... is registered for redaction\n`);

log.writeEvent("--- Building ---");
const exitCode = await run(process.execPath, ["-e", DEMO_SCRIPT], (c) => log.onStdout(c), (c) => log.onStderr(c));
log.writeEvent(`--- Build finished with exit code ${exitCode} ---`);
await log.flush();

const entries = decodeStreamReply(await redis.xrange(logStreamKey(jobId), "-", "+"));
console.log(`what a viewer sees (XRANGE ${logStreamKey(jobId)}):`);
for (const line of entries.flatMap((entry) => entry.lines)) {
  console.log(`  ${line.cursor.padEnd(18)} ${line.source.padEnd(6)} ${line.text}`);
}
const leaked = JSON.stringify(entries).includes(DEMO_SECRET);
console.log(`\nsecret in Redis: ${leaked ? "YES (bug)" : "no"}`);
console.log(`\nRead it yourself:\n  curl -s -H 'Authorization: Bearer ${token}' ${bridge.url} -d '["XRANGE","${logStreamKey(jobId)}","-","+"]'`);
console.log("\nThe bridge stays up for the Worker (npx wrangler dev with .dev.vars). Ctrl-C stops everything.");
