import { connect, createServer, type Socket } from "node:net";
import { closeServer, listenOnLoopback } from "../../tools/dev/listen.ts";

/** A loopback TCP proxy that keeps every byte clients sent through it, as a request log would. */
export interface RecordingProxy {
  /** `http://127.0.0.1:PORT` */
  readonly url: string;
  /** Everything clients sent so far, as text. */
  sent(): string;
  close(): Promise<void>;
}

export async function startRecordingProxy(targetPort: number): Promise<RecordingProxy> {
  const chunks: Buffer[] = [];
  const sockets = new Set<Socket>();
  const server = createServer((client) => {
    const upstream = connect(targetPort, "127.0.0.1");
    for (const socket of [client, upstream]) {
      sockets.add(socket);
      socket.once("close", () => sockets.delete(socket));
      socket.on("error", () => {
        client.destroy();
        upstream.destroy();
      });
    }
    client.on("data", (chunk: Buffer) => chunks.push(chunk));
    client.pipe(upstream);
    upstream.pipe(client);
  });
  const port = await listenOnLoopback(server, "the recording proxy");
  return {
    url: `http://127.0.0.1:${port}`,
    sent: () => Buffer.concat(chunks).toString("latin1"),
    async close() {
      for (const socket of sockets) socket.destroy();
      await closeServer(server);
    },
  };
}
