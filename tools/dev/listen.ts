import { once } from "node:events";
import type { Server } from "node:net";

/**
 * Starts `server` on loopback, at `port` (default 0: any free one), and returns the port it
 * got; rejects if it cannot listen. `what` names it in the error should it not be on TCP.
 */
export async function listenOnLoopback(server: Server, what: string, port = 0): Promise<number> {
  server.listen(port, "127.0.0.1");
  await once(server, "listening");
  const address = server.address();
  if (address === null || typeof address === "string")
    throw new Error(`${what} is not listening on TCP`);
  return address.port;
}

/** Stops `server` taking connections; resolves once the open ones have ended too. */
export function closeServer(server: Server): Promise<void> {
  return new Promise((resolve) => server.close(() => resolve()));
}
