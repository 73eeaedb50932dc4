import { connect, createServer, type Socket } from "node:net";
import { closeServer, listenOnLoopback } from "./listen.ts";

/**
 * A loopback TCP forwarder with a fixed address in front of a process whose address changes
 * when it restarts (workerd picks a new port): the runner and viewers keep one URL, as they
 * keep the Worker's hostname in production. While the target is down, connections are refused
 * (reset), as they would be.
 */
export interface TcpForwarder {
  /** `http://127.0.0.1:PORT`. */
  readonly url: string;
  /** New connections go here from now on. */
  retarget(target: string): void;
  close(): Promise<void>;
}

export async function startTcpForwarder(target: string): Promise<TcpForwarder> {
  let { hostname, port } = new URL(target);
  const sockets = new Set<Socket>();
  const server = createServer((client) => {
    const upstream = connect(Number(port), hostname);
    sockets.add(client).add(upstream);
    const closeBoth = () => {
      sockets.delete(client);
      sockets.delete(upstream);
      client.destroy();
      upstream.destroy();
    };
    client.on("error", closeBoth).on("close", closeBoth);
    upstream.on("error", closeBoth).on("close", closeBoth);
    client.pipe(upstream);
    upstream.pipe(client);
  });
  const listenPort = await listenOnLoopback(server, "the forwarder");
  return {
    url: `http://127.0.0.1:${listenPort}`,
    retarget(next) {
      ({ hostname, port } = new URL(next));
    },
    async close() {
      for (const socket of sockets) socket.destroy();
      await closeServer(server);
    },
  };
}
