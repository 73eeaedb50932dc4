// Runs the Upstash REST bridge for local development and benchmarks:
//   node tools/upstash-bridge/cli.ts [--port 8079] [--host 127.0.0.1] [--token TOKEN] [--redis-url redis://...]
// Without --redis-url it starts its own redis-server (append-only file, fsync every second) and stops it on exit.
import { randomBytes } from "node:crypto";
import { parseArgs } from "node:util";
import type { UpstashBridge } from "./bridge.ts";
import { startUpstashBridge } from "./bridge.ts";
import { isRedisUrl, redactUrl } from "./redis-executor.ts";
import type { RedisServerHandle } from "./redis-server.ts";
import { startRedisServer } from "./redis-server.ts";

const USAGE =
  "usage: node tools/upstash-bridge/cli.ts [--port 8079] [--host 127.0.0.1] [--token TOKEN] [--redis-url redis://HOST:PORT]";
const DEFAULT_PORT = 8079;
const EXIT_USAGE = 2;

interface CliOptions {
  readonly port: number;
  readonly host: string;
  readonly token: string;
  readonly redisUrl: string | undefined;
}

type ParsedCli =
  | { readonly kind: "run"; readonly options: CliOptions }
  | { readonly kind: "help" }
  | { readonly kind: "error"; readonly message: string };

const CLI_OPTIONS = {
  port: { type: "string" },
  host: { type: "string" },
  token: { type: "string" },
  "redis-url": { type: "string" },
  help: { type: "boolean", short: "h" },
} as const;

function parseCli(argv: readonly string[]): ParsedCli {
  try {
    const { values } = parseArgs({
      args: [...argv],
      options: CLI_OPTIONS,
      strict: true,
      allowPositionals: false,
    });
    return checkValues(values);
  } catch (error) {
    return { kind: "error", message: error instanceof Error ? error.message : String(error) };
  }
}

function checkValues(values: {
  port?: string;
  host?: string;
  token?: string;
  "redis-url"?: string;
  help?: boolean;
}): ParsedCli {
  if (values.help === true) return { kind: "help" };

  const port = values.port === undefined ? DEFAULT_PORT : Number(values.port);
  if (values.port !== undefined && (!/^\d+$/.test(values.port) || port > 65_535)) {
    return {
      kind: "error",
      message: `--port must be an integer from 0 to 65535, got ${JSON.stringify(values.port)}`,
    };
  }
  if (values.token !== undefined && !/^\S+$/.test(values.token)) {
    return { kind: "error", message: "--token must be a non-empty string without spaces" };
  }
  const redisUrl = values["redis-url"];
  if (redisUrl !== undefined && !isRedisUrl(redisUrl)) {
    return {
      kind: "error",
      message: `--redis-url must be a redis:// or rediss:// URL, got ${JSON.stringify(redactUrl(redisUrl))}`,
    };
  }
  if (values.host === "") return { kind: "error", message: "--host must not be empty" };
  return {
    kind: "run",
    options: {
      port,
      host: values.host ?? "127.0.0.1",
      token: values.token ?? randomBytes(18).toString("base64url"),
      redisUrl,
    },
  };
}

async function run(options: CliOptions): Promise<void> {
  let server: RedisServerHandle | undefined;
  let bridge: UpstashBridge | undefined;
  const stop = async (): Promise<void> => {
    await bridge?.close();
    await server?.stop();
  };
  try {
    if (options.redisUrl === undefined) server = await startRedisServer();
    const redisUrl = options.redisUrl ?? server?.url ?? "";
    bridge = await startUpstashBridge({
      redisUrl,
      token: options.token,
      port: options.port,
      host: options.host,
    });
    const origin = server === undefined ? "given" : "started by the bridge, append-only file";
    console.log(
      `upstash-bridge: listening on ${bridge.url} in front of ${redactUrl(redisUrl)} (${origin})`,
    );
    console.log(`UPSTASH_REDIS_REST_URL=${bridge.url}`);
    console.log(`UPSTASH_REDIS_REST_TOKEN=${bridge.token}`);
  } catch (error) {
    await stop();
    throw error;
  }

  let stopping = false;
  const onSignal = (signal: NodeJS.Signals): void => {
    if (stopping) {
      // A second Ctrl-C: stop waiting (a redis-server we started still stops, its watchdog sees us go).
      process.exit(1);
    }
    stopping = true;
    console.log(`upstash-bridge: ${signal}, stopping`);
    stop().then(
      () => process.exit(0),
      (error: unknown) => {
        console.error("upstash-bridge: error while stopping", error);
        process.exit(1);
      },
    );
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);
}

const parsed = parseCli(process.argv.slice(2));
if (parsed.kind === "help") {
  console.log(USAGE);
} else if (parsed.kind === "error") {
  console.error(`upstash-bridge: ${parsed.message}\n${USAGE}`);
  process.exitCode = EXIT_USAGE;
} else {
  run(parsed.options).catch((error: unknown) => {
    console.error(`upstash-bridge: ${error instanceof Error ? error.message : String(error)}`);
    process.exitCode = 1;
  });
}
