import type { IncomingMessage, ServerResponse } from "node:http";
import { createServer } from "node:http";

/**
 * How the Clerk instance behind a secret key answers `GET /v1/jwks`: `ok` serves the JWKS,
 * `fail` answers 500 as Clerk's API does in an outage, `down` closes the connection unanswered.
 */
export type ClerkApiMode = "ok" | "fail" | "down";
const MODES: readonly string[] = ["ok", "fail", "down"] satisfies ClerkApiMode[];
const isMode = (value: unknown): value is ClerkApiMode =>
  typeof value === "string" && MODES.includes(value);

/** A JWKS request as the server saw it. */
export interface ClerkApiRequest {
  readonly method: string;
  readonly path: string;
  readonly authorization: string | null;
}

export interface ClerkApiServerOptions {
  /** Public JWKs (each with its `kid`) served at `GET /v1/jwks`. */
  readonly keys: readonly object[];
  /** Default 127.0.0.1. */
  readonly host?: string;
}

export interface ClerkApiServer {
  /** `http://HOST:PORT`, to pass as `apiUrl` to Clerk's verifyToken (or as CLERK_API_URL). */
  readonly url: string;
  close(): Promise<void>;
}

// The test-facing side, beside the Clerk-facing `/v1/jwks`:
//   POST /__control {"secretKey": "sk_test_…", "mode": "ok" | "fail" | "down"}
//     makes the secret key valid (Clerk answers an unknown one with 401) and sets how its JWKS
//     requests are answered. Keys are per test because Clerk caches a JWKS per API URL and
//     secret key for the isolate's lifetime.
//   GET /__control?secretKey=sk_test_…  ->  {"requests": ClerkApiRequest[]}
//     the JWKS requests whose Authorization header mentions that key, oldest first.
const CONTROL_PATH = "/__control";
const JWKS_PATH = "/v1/jwks";
const MAX_CONTROL_BODY_BYTES = 64 * 1024;

/**
 * Starts a loopback HTTP server that answers the one Backend API call Clerk's verifyToken makes
 * with a secret key (`GET /v1/jwks`, `Authorization: Bearer <secret key>`), for the Worker's auth
 * tests to exercise that path over real HTTP. A test tool: it holds every request in memory.
 */
export async function startClerkApiServer(options: ClerkApiServerOptions): Promise<ClerkApiServer> {
  const jwks = JSON.stringify({ keys: options.keys });
  const modes = new Map<string, ClerkApiMode>();
  const requests: ClerkApiRequest[] = [];

  function answerJwks(request: IncomingMessage, response: ServerResponse): void {
    const authorization = request.headers.authorization ?? null;
    requests.push({ method: request.method ?? "", path: request.url ?? "", authorization });
    const secretKey = /^Bearer (\S+)$/.exec(authorization ?? "")?.[1];
    const mode = secretKey === undefined ? undefined : modes.get(secretKey);
    if (mode === undefined) {
      // Clerk's answer to a missing or unknown secret key; verifyToken reports it as InvalidSecretKey.
      sendJson(
        response,
        401,
        clerkErrors("clerk_key_invalid", "The provided Clerk Secret Key is invalid."),
      );
      return;
    }
    if (mode === "down") {
      request.socket.destroy();
      return;
    }
    if (mode === "fail") {
      sendJson(
        response,
        500,
        clerkErrors("internal_clerk_error", "There was an internal error on our servers."),
      );
      return;
    }
    response.writeHead(200, { "Content-Type": "application/json" }).end(jwks);
  }

  async function answerControl(
    request: IncomingMessage,
    response: ServerResponse,
    url: URL,
  ): Promise<void> {
    if (request.method === "GET") {
      const secretKey = url.searchParams.get("secretKey");
      if (secretKey === null || secretKey === "")
        return sendJson(response, 400, { error: "secretKey is required" });
      return sendJson(response, 200, {
        requests: requests.filter((seen) => seen.authorization?.includes(secretKey) === true),
      });
    }
    if (request.method !== "POST") return sendJson(response, 405, { error: "GET or POST" });
    const body: unknown = JSON.parse(await readBody(request));
    const secretKey =
      typeof body === "object" && body !== null && "secretKey" in body ? body.secretKey : undefined;
    const mode =
      typeof body === "object" && body !== null && "mode" in body ? body.mode : undefined;
    if (typeof secretKey !== "string" || !/^\S+$/.test(secretKey) || !isMode(mode)) {
      return sendJson(response, 400, {
        error: 'expected {"secretKey": "<no spaces>", "mode": "ok" | "fail" | "down"}',
      });
    }
    modes.set(secretKey, mode);
    response.writeHead(204).end();
  }

  const server = createServer((request, response) => {
    const url = new URL(request.url ?? "/", "http://localhost");
    const answered =
      url.pathname === CONTROL_PATH
        ? answerControl(request, response, url)
        : url.pathname === JWKS_PATH && request.method === "GET"
          ? Promise.resolve(answerJwks(request, response))
          : Promise.resolve(
              sendJson(
                response,
                404,
                clerkErrors(
                  "resource_not_found",
                  `${request.method} ${url.pathname} is not served here`,
                ),
              ),
            );
    answered.catch((error: unknown) => {
      if (!response.headersSent)
        sendJson(response, 400, { error: error instanceof Error ? error.message : String(error) });
    });
  });
  server.listen(0, options.host ?? "127.0.0.1");
  await new Promise<void>((resolve, reject) => {
    server.once("listening", resolve);
    server.once("error", reject);
  });
  const bound = server.address();
  if (bound === null || typeof bound === "string")
    throw new Error("the Clerk API server is not listening on TCP");
  return {
    url: `http://${bound.address}:${bound.port}`,
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.close((error) => (error ? reject(error) : resolve()));
        server.closeAllConnections();
      }),
  };
}

// Clerk's Backend API error body.
function clerkErrors(code: string, message: string): object {
  return { errors: [{ code, message, long_message: message }] };
}

function sendJson(response: ServerResponse, status: number, body: object): void {
  response.writeHead(status, { "Content-Type": "application/json" }).end(JSON.stringify(body));
}

async function readBody(request: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of request) {
    const bytes = Buffer.from(chunk);
    size += bytes.length;
    if (size > MAX_CONTROL_BODY_BYTES)
      throw new Error(`control body over ${MAX_CONTROL_BODY_BYTES} bytes`);
    chunks.push(bytes);
  }
  return Buffer.concat(chunks).toString("utf8");
}
