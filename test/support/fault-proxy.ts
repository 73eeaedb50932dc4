import { once } from "node:events";
import { connect, createServer, type Socket } from "node:net";

/**
 * How the proxy treats traffic:
 * - "pass": forwards both ways;
 * - "blackhole": forwards nothing and answers nothing; connections stay open (a dead route);
 * - "reset": resets every open and new connection (RST), nothing forwarded;
 * - "half-open": requests reach the server (and are applied), answers never come back, the
 *   connection stays open: the client hangs until its own timeout;
 * - "drop-answers": requests are applied, then the connection is reset as the answer starts.
 */
export type FaultMode = "pass" | "blackhole" | "reset" | "half-open" | "drop-answers";

export interface FaultProxy {
  /** `http://127.0.0.1:PORT`: point a client here instead of at `target`. */
  readonly url: string;
  readonly mode: FaultMode;
  setMode(mode: FaultMode): void;
  /** Connections opened so far (each reconnect counts). */
  readonly connections: number;
  close(): Promise<void>;
}

interface Pair {
  readonly client: Socket;
  readonly upstream: Socket;
}

/**
 * A loopback TCP proxy that injects network faults between two real processes (the runner and
 * the Upstash bridge, viewers and the Worker), from outside both: neither knows it is there.
 */
export async function startFaultProxy(target: string): Promise<FaultProxy> {
  const { hostname, port } = new URL(target);
  const pairs = new Set<Pair>();
  let mode: FaultMode = "pass";
  let opened = 0;

  const server = createServer((client) => {
    opened += 1;
    if (mode === "reset") {
      client.resetAndDestroy();
      return;
    }
    const upstream = connect(Number(port), hostname);
    const pair: Pair = { client, upstream };
    pairs.add(pair);
    const closeBoth = () => {
      pairs.delete(pair);
      client.destroy();
      upstream.destroy();
    };
    client.on("error", closeBoth).on("close", closeBoth);
    upstream.on("error", closeBoth).on("close", closeBoth);
    client.on("data", (chunk: Buffer) => {
      if (mode === "pass" || mode === "half-open" || mode === "drop-answers") upstream.write(chunk);
    });
    upstream.on("data", (chunk: Buffer) => {
      if (mode === "pass") client.write(chunk);
      else if (mode === "drop-answers") {
        client.resetAndDestroy();
        upstream.destroy();
      }
    });
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const address = server.address();
  if (address === null || typeof address === "string")
    throw new Error("the fault proxy is not listening on TCP");

  return {
    url: `http://127.0.0.1:${address.port}`,
    get mode() {
      return mode;
    },
    get connections() {
      return opened;
    },
    setMode(next) {
      mode = next;
      if (next !== "reset") return;
      for (const { client, upstream } of [...pairs]) {
        client.resetAndDestroy();
        upstream.destroy();
      }
    },
    async close() {
      for (const { client, upstream } of pairs) {
        client.destroy();
        upstream.destroy();
      }
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
