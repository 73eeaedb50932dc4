import { once } from "node:events";
import { connect, createServer, type Socket } from "node:net";

/** A request for a live log stream, as it went through the proxy. */
export interface StreamRequest {
  readonly path: string;
  /** The Last-Event-ID header: what EventSource sends when it reconnects by itself. */
  readonly lastEventId: string | null;
}

export interface DropProxy {
  /** `http://127.0.0.1:PORT`: open pages here instead of at the Worker. */
  readonly url: string;
  /** Every `GET …/logs/stream` so far, oldest first. */
  readonly streamRequests: readonly StreamRequest[];
  /**
   * Cuts every open connection that is carrying a log stream (only those whose path starts with
   * `pathPrefix`, when given), both ways, as a deploy or a network drop does. Returns how many.
   * A browser keeps a connection whose stream ended open for its next request; the prefix keeps
   * an earlier test's job out of the count.
   */
  dropStreams(pathPrefix?: string): number;
  close(): Promise<void>;
}

interface Connection {
  readonly client: Socket;
  readonly upstream: Socket;
  /** The path of the last request on it when that is a log stream (its response may still flow). */
  streaming: string | null;
}

const isLogStream = (method: string, path: string): boolean =>
  method === "GET" && /\/logs\/stream(?:\?|$)/.test(path);

const REQUEST_LINE = /^(GET|HEAD|POST|PUT|PATCH|DELETE|OPTIONS) (\S+) HTTP\/1\.[01]\r\n/;

/**
 * A loopback TCP proxy in front of the Worker that can cut live streams in the middle, so a
 * browser test sees a stream drop for real and its EventSource reconnects by itself. It reads
 * request heads as they pass (plain HTTP/1.1 only; a test tool, not a general proxy).
 */
export async function startDropProxy(
  target: string,
  /** Which requests carry a stream that dropStreams() cuts; default a log stream's GET. */
  isStream: (method: string, path: string) => boolean = isLogStream,
): Promise<DropProxy> {
  const { hostname, port } = new URL(target);
  const connections = new Set<Connection>();
  const streamRequests: StreamRequest[] = [];

  const server = createServer((client) => {
    const upstream = connect(Number(port), hostname);
    const connection: Connection = { client, upstream, streaming: null };
    connections.add(connection);
    const closeBoth = () => {
      connections.delete(connection);
      client.destroy();
      upstream.destroy();
    };
    client.on("error", closeBoth).on("close", closeBoth);
    upstream.on("error", closeBoth).on("close", closeBoth);
    client.on("data", (chunk: Buffer) => {
      // Pages here send GETs without bodies: every chunk that starts a request starts its head.
      const head = chunk.toString("latin1", 0, Math.min(chunk.length, 8192));
      const request = REQUEST_LINE.exec(head);
      const path = request?.[2];
      if (path !== undefined) {
        connection.streaming = isStream(request?.[1] ?? "", path) ? path : null;
        if (connection.streaming !== null) {
          const lastEventId = /\r\nlast-event-id: *([^\r\n]*)\r\n/i.exec(head)?.[1] ?? null;
          streamRequests.push({ path, lastEventId });
        }
      }
      upstream.write(chunk);
    });
    upstream.pipe(client);
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const address = server.address();
  if (address === null || typeof address === "string")
    throw new Error("the drop proxy is not listening on TCP");

  return {
    url: `http://127.0.0.1:${address.port}`,
    streamRequests,
    dropStreams(pathPrefix) {
      let dropped = 0;
      for (const connection of [...connections]) {
        if (connection.streaming === null) continue;
        if (pathPrefix !== undefined && !connection.streaming.startsWith(pathPrefix)) continue;
        connection.client.destroy();
        connection.upstream.destroy();
        dropped += 1;
      }
      return dropped;
    },
    async close() {
      for (const { client, upstream } of connections) {
        client.destroy();
        upstream.destroy();
      }
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
