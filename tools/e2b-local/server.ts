import { once } from "node:events";
import type { ServerResponse } from "node:http";
import { createServer } from "node:http";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import { getRequestListener } from "@hono/node-server";
import type { Sandbox } from "../../worker-build-runner/sandbox/types.ts";
import { sandboxApi } from "./api.ts";
import type { SandboxLookup } from "./envd.ts";
import { envdHttp, envdRoutes } from "./envd.ts";
import type { E2BLocalFaults } from "./faults.ts";
import { createFaultInjector } from "./faults.ts";
import type { HostedSandbox } from "./hosted-sandbox.ts";

export type { E2BLocalFaults } from "./faults.ts";

export interface E2BLocalServerOptions {
  /** Where the sandboxes really run (the local sandbox, isolated or not). */
  readonly sandbox: Sandbox;
  /** The key clients must send as X-API-KEY. */
  readonly apiKey: string;
  /** Default 0: a free port. */
  readonly port?: number;
  /** Default 127.0.0.1. */
  readonly host?: string;
}

export interface E2BLocalServer {
  /** `http://HOST:PORT`: both the SDK's `apiUrl` (E2B_API_URL) and `sandboxUrl` (E2B_SANDBOX_URL). */
  readonly url: string;
  readonly apiKey: string;
  readonly faults: E2BLocalFaults;
  /** The sandboxes alive right now. */
  runningSandboxes(): readonly HostedSandbox[];
  /** Kills every sandbox and stops the server. */
  close(): Promise<void>;
}

/**
 * An E2B-compatible server on loopback: the sandbox API (`X-API-KEY`) and, for each sandbox,
 * envd (process and filesystem services over Connect, `/files`, `/health`), told apart as the
 * SDK tells them apart when `sandboxUrl` is set: envd requests name their sandbox in
 * `E2b-Sandbox-Id`. Each E2B sandbox is one session of `options.sandbox`.
 */
export async function startE2BLocalServer(options: E2BLocalServerOptions): Promise<E2BLocalServer> {
  if (options.apiKey === "") throw new Error("e2b-local: apiKey must not be empty");
  const sandboxes = new Map<string, HostedSandbox>();
  const injector = createFaultInjector();
  // Responses carrying envd calls, per sandbox: when a sandbox ends they are cut, as when a VM
  // goes away under its connections.
  const openCalls = new Map<string, Set<ServerResponse>>();

  const lookup: SandboxLookup = (headers) => {
    const hosted = sandboxes.get(headers.get("e2b-sandbox-id") ?? "");
    if (hosted === undefined || !hosted.running)
      return { status: 502, message: "The sandbox was not found" };
    if (headers.get("x-access-token") !== hosted.envdAccessToken)
      return { status: 401, message: "invalid access token" };
    return hosted;
  };
  const api = getRequestListener(
    sandboxApi({ apiKey: options.apiKey, sandbox: options.sandbox, sandboxes, faults: injector })
      .fetch,
  );
  const envdFiles = getRequestListener(envdHttp(lookup).fetch);
  const envdRpc = connectNodeAdapter({ routes: envdRoutes(lookup) });

  const server = createServer((request, response) => {
    const sandboxId = request.headers["e2b-sandbox-id"];
    if (typeof sandboxId !== "string") {
      void api(request, response);
      return;
    }
    const hosted = sandboxes.get(sandboxId);
    if (hosted?.running === true) {
      let calls = openCalls.get(sandboxId);
      if (calls === undefined) {
        calls = new Set();
        openCalls.set(sandboxId, calls);
        const tracked = calls;
        void hosted.ended.then(() => {
          openCalls.delete(sandboxId);
          for (const call of tracked) call.destroy();
        });
      }
      calls.add(response);
      response.once("close", () => calls.delete(response));
    }
    if (/^\/(process\.Process|filesystem\.Filesystem)\//.test(request.url ?? ""))
      envdRpc(request, response);
    else void envdFiles(request, response);
  });
  server.listen(options.port ?? 0, options.host ?? "127.0.0.1");
  await once(server, "listening");
  const address = server.address();
  if (address === null || typeof address === "string")
    throw new Error("e2b-local: the server is not listening on TCP");
  const host = address.family === "IPv6" ? `[${address.address}]` : address.address;

  return {
    url: `http://${host}:${address.port}`,
    apiKey: options.apiKey,
    faults: injector.faults,
    runningSandboxes: () => [...sandboxes.values()].filter((hosted) => hosted.running),
    async close() {
      await Promise.allSettled([...sandboxes.values()].map((hosted) => hosted.kill("killed")));
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
