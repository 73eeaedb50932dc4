// Runs the real Worker (src/index.ts per wrangler.toml: Durable Objects, Queue, R2) in local
// workerd, in this process, through wrangler's programmatic dev API: the same bundle
// `wrangler deploy` would build, with bindings passed in rather than read from .dev.vars.
//
// Requests go to the user worker's own address, not through wrangler's hot-reload proxy
// (a second workerd that funnels every request and SSE stream through one Durable Object):
// production has no such hop.

export interface WorkerdHandle {
  /** `http://127.0.0.1:PORT` of the Worker. */
  readonly url: string;
  dispose(): Promise<void>;
}

export interface StartWorkerdOptions {
  /** Vars and secrets, over wrangler.toml's [vars]. */
  readonly bindings: Readonly<Record<string, string>>;
  readonly configPath: string;
  readonly readyTimeoutMs?: number;
  /** Where Durable Object, R2 and Queue state lives; default: in memory (nothing persists). */
  readonly persistTo?: string;
}

interface Address {
  readonly protocol: string;
  readonly hostname: string;
  readonly port: string;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null;
}

function addressOf(event: unknown): Address | undefined {
  if (!isRecord(event) || !isRecord(event.proxyData) || !isRecord(event.proxyData.userWorkerUrl))
    return undefined;
  const { protocol, hostname, port } = event.proxyData.userWorkerUrl;
  return typeof protocol === "string" && typeof hostname === "string" && typeof port === "string"
    ? { protocol, hostname, port }
    : undefined;
}

function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not finish within ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

export async function startWorkerd(options: StartWorkerdOptions): Promise<WorkerdHandle> {
  // No metrics or update checks (no internet here), quiet logs.
  process.env.WRANGLER_SEND_METRICS ??= "false";
  process.env.WRANGLER_LOG ??= "warn";
  // No Request.cf lookup from Cloudflare (unreachable here); workerd uses a placeholder.
  process.env.CLOUDFLARE_CF_FETCH_ENABLED ??= "false";
  // No local trace collector: wrangler's dev server attaches one to the Worker by default, and
  // it cost workerd more CPU than the request itself (a runner's push: 3.7 ms of CPU with it,
  // 0.8 ms without; GET /healthz 1.7 and 0.5 ms). Production has none unless a tail Worker is
  // bound, so the local system, its tests and the benches run with production's timing. That
  // timing showed a lost alarm that the collector's timing had hidden (src/shared/alarm.ts).
  process.env.X_LOCAL_OBSERVABILITY ??= "false";
  const timeoutMs = options.readyTimeoutMs ?? 60_000;
  const { unstable_DevEnv: DevEnv } = await import("wrangler");
  const devEnv = new DevEnv();
  let reloaded: (address: Address) => void = () => undefined;
  const address = new Promise<Address>((resolve) => (reloaded = resolve));
  devEnv.on("reloadComplete", (event: unknown) => {
    const found = addressOf(event);
    if (found) reloaded(found);
  });
  const bindings = Object.fromEntries(
    Object.entries(options.bindings).map(([name, value]) => [
      name,
      { type: "secret_text" as const, value },
    ]),
  );
  const dispose = async (): Promise<void> => {
    await devEnv.teardown();
  };
  try {
    const worker = await withTimeout(
      devEnv.startWorker({
        config: options.configPath,
        bindings,
        dev: {
          persist: options.persistTo ?? false,
          watch: false,
          inspector: false,
          liveReload: false,
          generateTypes: false,
          logLevel: "warn",
          server: { hostname: "127.0.0.1", port: 0 },
        },
      }),
      timeoutMs,
      "starting the Worker",
    );
    await withTimeout(worker.ready, timeoutMs, "the Worker's readiness");
    const { protocol, hostname, port } = await withTimeout(
      address,
      timeoutMs,
      "the Worker's address",
    );
    return { url: `${protocol}//${hostname}:${port}`, dispose };
  } catch (error) {
    await dispose().catch(() => undefined);
    throw error;
  }
}
