// Runs the E2B-compatible server for local development, in front of the local sandbox:
//   node tools/e2b-local/cli.ts [--port 3049] [--host 127.0.0.1] [--api-key KEY]
// Then point the runner (or any E2B SDK) at it with the variables it prints.
import { randomBytes } from "node:crypto";
import { parseArgs } from "node:util";
import { localSandbox } from "../../worker-build-runner/sandbox/local.ts";
import { startE2BLocalServer } from "./server.ts";

const USAGE = "usage: node tools/e2b-local/cli.ts [--port 3049] [--host 127.0.0.1] [--api-key KEY]";
const DEFAULT_PORT = 3049;

let values: { port?: string; host?: string; "api-key"?: string; help?: boolean };
try {
  ({ values } = parseArgs({
    options: {
      port: { type: "string" },
      host: { type: "string" },
      "api-key": { type: "string" },
      help: { type: "boolean", short: "h" },
    },
    strict: true,
    allowPositionals: false,
  }));
} catch (error) {
  console.error(`${error instanceof Error ? error.message : String(error)}\n${USAGE}`);
  process.exit(2);
}
if (values.help === true) {
  console.log(USAGE);
  process.exit(0);
}
const port = values.port === undefined ? DEFAULT_PORT : Number(values.port);
if (!Number.isInteger(port) || port < 0 || port > 65_535) {
  console.error(
    `--port must be an integer from 0 to 65535, got ${JSON.stringify(values.port)}\n${USAGE}`,
  );
  process.exit(2);
}
const apiKey = values["api-key"] ?? `e2b_local_${randomBytes(12).toString("hex")}`;
if (apiKey === "") {
  console.error(`--api-key must not be empty\n${USAGE}`);
  process.exit(2);
}

const server = await startE2BLocalServer({
  sandbox: localSandbox(),
  apiKey,
  port,
  host: values.host ?? "127.0.0.1",
});
console.log(`e2b-local listening on ${server.url} (sandboxes run in the local sandbox)`);
console.log(`  E2B_API_URL=${server.url} E2B_SANDBOX_URL=${server.url} E2B_API_KEY=${apiKey}`);

const stop = (): void => {
  void server.close().then(() => process.exit(0));
};
process.once("SIGINT", stop);
process.once("SIGTERM", stop);
