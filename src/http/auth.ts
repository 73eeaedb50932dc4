import { type VerifyTokenOptions, verifyToken } from "@clerk/backend";
import { TokenVerificationError, TokenVerificationErrorReason } from "@clerk/backend/errors";
import { decodeJwt } from "@clerk/backend/jwt";
import type { Context, MiddlewareHandler, Next } from "hono";
import { getCookie } from "hono/cookie";
import { createMiddleware } from "hono/factory";
import { workerConfig } from "../config.ts";
import { ApiError } from "../shared/errors.ts";
import { log } from "../shared/log.ts";

export interface ClerkAuthOptions {
  /** Clerk's PEM public key (Dashboard -> API keys -> JWT public key): verification is networkless. */
  readonly jwtKey?: string;
  /** Without jwtKey, Clerk's JWKS is fetched from the Backend API with this secret key (and cached). */
  readonly secretKey?: string;
  /** The Backend API the JWKS is fetched from; Clerk's default (https://api.clerk.com) when absent. */
  readonly apiUrl?: string;
  /** Origins allowed in the token's `azp` claim; enforced when non-empty. */
  readonly authorizedParties?: readonly string[];
  /** Leeway for `exp`, `nbf` and `iat`; Clerk's default (5 s) when absent. */
  readonly clockSkewInMs?: number;
}

export interface AuthVariables {
  userId: string;
  sessionId: string | null;
}

// Clerk's session cookie on same-origin requests (browsers' EventSource cannot send a header).
const SESSION_COOKIE = "__session";

/**
 * Checks its options once (throws a clear Error naming the problem if neither jwtKey nor secretKey)
 * and returns the per-request middleware.
 */
export function clerkAuth(
  options: ClerkAuthOptions,
): MiddlewareHandler<{ Variables: AuthVariables }> {
  const problems = clerkOptionProblems(options);
  if (problems.length > 0) throw new Error(`clerkAuth: ${problems.join("; ")}`);
  const verifyOptions = verifyOptionsOf(options);
  return createMiddleware<{ Variables: AuthVariables }>((c, next) =>
    authenticate(c, next, verifyOptions),
  );
}

/**
 * clerkAuth() with the Worker's CLERK_* variables (src/config.ts checks them, with every other
 * variable, once per env).
 */
export function clerkAuthFromEnv(): MiddlewareHandler<{ Bindings: Env; Variables: AuthVariables }> {
  return createMiddleware<{ Bindings: Env; Variables: AuthVariables }>((c, next) =>
    authenticate(c, next, verifyOptionsOf(workerConfig(c.env).clerk)),
  );
}

/**
 * Verifies a session token exactly as clerkAuthFromEnv() does, for a route that receives the
 * token somewhere else than a header or the cookie (the development sign-in's query string).
 * Throws the same 401 / 503 ApiErrors.
 */
export function verifySessionTokenFromEnv(
  c: Context<{ Bindings: Env }>,
  token: string,
): Promise<AuthVariables> {
  return verifySession(c, token, verifyOptionsOf(workerConfig(c.env).clerk));
}

async function authenticate<E extends { Variables: AuthVariables }>(
  c: Context<E>,
  next: Next,
  verifyOptions: VerifyTokenOptions,
): Promise<void> {
  const token = sessionCredentialOf(c)?.token;
  if (token === undefined) {
    throw unauthorized(
      c,
      "unauthenticated",
      "sign in: no session token in the Authorization header or the __session cookie",
    );
  }
  const session = await verifySession(c, token, verifyOptions);
  c.set("userId", session.userId);
  c.set("sessionId", session.sessionId);
  await next();
}

async function verifySession(
  c: Context,
  token: string,
  verifyOptions: VerifyTokenOptions,
): Promise<AuthVariables> {
  let claims: Awaited<ReturnType<typeof verifyToken>>;
  try {
    claims = await verifyToken(token, verifyOptions);
  } catch (error) {
    // Clerk's errors carry no token text; nothing logged or answered here does either.
    throw rejection(c, token, error);
  }
  // Clerk's authenticateRequest() treats a session with pending tasks (say, choosing an
  // organization) as signed out by default; so do we.
  if (claims.sts === "pending") {
    throw unauthorized(
      c,
      "unauthenticated",
      "the session has pending tasks; finish signing in first",
    );
  }
  return { userId: claims.sub, sessionId: typeof claims.sid === "string" ? claims.sid : null };
}

/**
 * Where the session token of this request comes from. `Authorization: Bearer <jwt>` wins over
 * the cookie, and an invalid Bearer token is not retried with the cookie (as in Clerk's
 * authenticateRequest). Another scheme (a proxy's Basic auth) is not ours and is passed over. An
 * empty cookie is Clerk's signed-out state.
 */
export function sessionCredentialOf(
  c: Context,
): { readonly from: "bearer" | "cookie"; readonly token: string } | undefined {
  const authorization = c.req.header("Authorization")?.trim();
  if (authorization !== undefined) {
    const bearer = /^Bearer(?:\s+(.*))?$/i.exec(authorization);
    if (bearer !== null) return { from: "bearer", token: bearer[1]?.trim() ?? "" };
  }
  const cookie = getCookie(c, SESSION_COOKIE);
  return cookie === undefined || cookie === "" ? undefined : { from: "cookie", token: cookie };
}

// Reasons that say our configuration or Clerk's API failed, not the caller's token: answering 401
// would sign a user out for our outage.
const serverSideReasons = new Set<string>([
  TokenVerificationErrorReason.InvalidSecretKey,
  TokenVerificationErrorReason.LocalJWKMissing,
  TokenVerificationErrorReason.RemoteJWKFailedToLoad,
  TokenVerificationErrorReason.RemoteJWKInvalid,
  TokenVerificationErrorReason.RemoteJWKMissing,
  TokenVerificationErrorReason.JWKFailedToResolve,
]);

function rejection(c: Context, token: string, error: unknown): ApiError {
  const reason = error instanceof TokenVerificationError ? error.reason : undefined;
  if (reason === TokenVerificationErrorReason.TokenExpired) {
    return unauthorized(
      c,
      "token_expired",
      "the session token has expired; refresh it and retry",
      error,
    );
  }
  const tokensFault =
    reason === undefined ? !hasObjectHeaderAndPayload(token) : !serverSideReasons.has(reason);
  if (tokensFault) {
    return unauthorized(
      c,
      "invalid_token",
      `the session token was rejected: ${whyRejected(reason)}`,
      error,
    );
  }
  log.error(
    `clerkAuth: could not verify a session token (${reason ?? (error instanceof Error ? error.name : "unknown")})`,
    error instanceof Error ? error.message : "",
  );
  return new ApiError(
    503,
    "auth_unavailable",
    "session tokens cannot be verified right now; retry shortly",
    { cause: error },
  );
}

// What a person can act on, by Clerk's reason (its own strings, such as "token-invalid", say
// little to someone who pasted a token by hand).
const REJECTION_REASONS: ReadonlyMap<string, string> = new Map([
  [TokenVerificationErrorReason.TokenInvalid, "it is not a Clerk session token (a signed JWT)"],
  [
    TokenVerificationErrorReason.TokenInvalidSignature,
    "its signature does not match this instance's key",
  ],
  [TokenVerificationErrorReason.TokenInvalidIssuer, "it was issued by another Clerk instance"],
  [
    TokenVerificationErrorReason.TokenInvalidAlgorithm,
    "it is signed with an algorithm this service does not accept",
  ],
  [
    TokenVerificationErrorReason.TokenInvalidAuthorizedParties,
    "it was issued to a page on an origin this service does not accept (azp)",
  ],
  [TokenVerificationErrorReason.TokenNotActiveYet, "it is not valid yet (check the clock)"],
  [
    TokenVerificationErrorReason.TokenIatInTheFuture,
    "it was issued in the future (check the clock)",
  ],
  [
    TokenVerificationErrorReason.JWKKidMismatch,
    "it is signed with a key this instance does not have",
  ],
]);

function whyRejected(reason: string | undefined): string {
  return (
    REJECTION_REASONS.get(reason ?? TokenVerificationErrorReason.TokenInvalid) ??
    "it could not be verified; sign in again"
  );
}

// verifyToken throws a bare TypeError, not its TokenVerificationError, for a token whose header or
// payload is JSON but not an object (`null`): such a token is the caller's fault, not an outage.
function hasObjectHeaderAndPayload(token: string): boolean {
  try {
    const { header, payload }: { header: unknown; payload: unknown } = decodeJwt(token);
    return (
      typeof header === "object" &&
      header !== null &&
      typeof payload === "object" &&
      payload !== null
    );
  } catch {
    return false;
  }
}

function unauthorized(
  c: Context,
  code: "unauthenticated" | "invalid_token" | "token_expired",
  message: string,
  cause?: unknown,
): ApiError {
  // RFC 6750: no error attribute when the request carried no credentials at all.
  c.header(
    "WWW-Authenticate",
    code === "unauthenticated" ? "Bearer" : 'Bearer error="invalid_token"',
  );
  return new ApiError(401, code, message, { cause });
}

/** Every problem with the options, worded for both the option and its Worker variable. */
export function clerkOptionProblems(options: ClerkAuthOptions): string[] {
  const { jwtKey, secretKey, apiUrl, authorizedParties } = verifyOptionsOf(options);
  const problems: string[] = [];
  if (jwtKey === undefined && secretKey === undefined) {
    problems.push(
      "neither jwtKey (CLERK_JWT_KEY, Clerk's PEM public key: verifies offline) nor secretKey (CLERK_SECRET_KEY: fetches Clerk's JWKS) is set",
    );
  }
  if (jwtKey !== undefined && !pemPublicKey.test(jwtKey)) {
    problems.push(
      "jwtKey (CLERK_JWT_KEY) is not a PEM public key: expected -----BEGIN PUBLIC KEY-----, base64, -----END PUBLIC KEY----- (real line breaks or none, not \\n escapes)",
    );
  }
  if (apiUrl !== undefined && !isHttpUrl(apiUrl)) {
    problems.push(
      `apiUrl (CLERK_API_URL) must be an http(s) URL such as https://api.clerk.com: ${JSON.stringify(apiUrl)}`,
    );
  }
  for (const party of authorizedParties ?? []) {
    if (!isOrigin(party)) {
      problems.push(
        `authorizedParties (CLERK_AUTHORIZED_PARTIES) must be origins such as https://app.example.com, without a path or trailing slash: ${JSON.stringify(party)}`,
      );
    }
  }
  const { clockSkewInMs } = options;
  if (clockSkewInMs !== undefined && !(Number.isFinite(clockSkewInMs) && clockSkewInMs >= 0)) {
    problems.push(`clockSkewInMs must be a non-negative number of milliseconds: ${clockSkewInMs}`);
  }
  return problems;
}

// Blank strings are unset, as they are in .dev.vars.
function verifyOptionsOf(options: ClerkAuthOptions): VerifyTokenOptions {
  return {
    jwtKey: nonEmpty(options.jwtKey),
    secretKey: nonEmpty(options.secretKey),
    apiUrl: nonEmpty(options.apiUrl),
    authorizedParties: [...(options.authorizedParties ?? [])],
    clockSkewInMs: options.clockSkewInMs,
  };
}

const pemPublicKey =
  /^\s*-----BEGIN PUBLIC KEY-----[\sA-Za-z0-9+/]+={0,2}\s*-----END PUBLIC KEY-----\s*$/;

// The token's azp is the browser's Origin; anything else configured here would never match.
function isOrigin(value: string): boolean {
  return URL.canParse(value) && new URL(value).origin === value;
}

function isHttpUrl(value: string): boolean {
  return URL.canParse(value) && ["http:", "https:"].includes(new URL(value).protocol);
}

function nonEmpty(value: string | undefined): string | undefined {
  const trimmed = value?.trim();
  return trimmed === "" ? undefined : trimmed;
}
