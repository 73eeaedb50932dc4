// Serves the example page and the client's TypeScript as browser modules, with Node's own type
// stripping (no bundler): `node examples/live-log/serve.ts [port]`, then open
// http://localhost:PORT/examples/live-log/#api=<the Worker's URL>&job=<job id>&token=<a session token>.
// The Worker must list this origin in CORS_ORIGINS. Only examples/ and src/client/ are served.
import { readFile } from "node:fs/promises";
import { createServer, type Server } from "node:http";
import { stripTypeScriptTypes } from "node:module";
import { fileURLToPath } from "node:url";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const SERVED = ["examples/", "src/client/"];
/** Where the example page is served. */
export const PAGE = "/examples/live-log/";

export interface ExampleServer {
  /** `http://localhost:PORT` (a name, not 127.0.0.1: another site than a loopback Worker's). */
  readonly origin: string;
  close(): Promise<void>;
}

export async function startExampleServer(port = 0): Promise<ExampleServer> {
  const server: Server = createServer(async (request, response) => {
    const path = new URL(request.url ?? "/", "http://example").pathname;
    // The page's modules are relative to it: serve it at its own path (a fragment survives this).
    if (path === "/") {
      response.writeHead(302, { Location: PAGE }).end();
      return;
    }
    const relative = path.endsWith("/") ? `${path.slice(1)}index.html` : path.slice(1);
    if (relative.includes("..") || !SERVED.some((prefix) => relative.startsWith(prefix))) {
      response.writeHead(404).end();
      return;
    }
    try {
      const text = await readFile(`${ROOT}${relative}`, "utf8");
      if (relative.endsWith(".ts")) {
        response.writeHead(200, { "Content-Type": "text/javascript; charset=utf-8" });
        response.end(stripTypeScriptTypes(text));
      } else {
        const type = relative.endsWith(".html") ? "text/html" : "text/plain";
        response.writeHead(200, { "Content-Type": `${type}; charset=utf-8` }).end(text);
      }
    } catch {
      response.writeHead(404).end();
    }
  });
  await new Promise<void>((resolve) => server.listen(port, "127.0.0.1", resolve));
  const address = server.address();
  if (address === null || typeof address === "string")
    throw new Error("the example server is not on TCP");
  return {
    origin: `http://localhost:${address.port}`,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

if (import.meta.main) {
  const server = await startExampleServer(Number(process.argv[2] ?? 5173));
  console.log(
    `example: ${server.origin}${PAGE}#api=<Worker URL>&job=<job id>&token=<session token>`,
  );
}
