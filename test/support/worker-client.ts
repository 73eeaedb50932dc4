import { env, exports } from "cloudflare:workers";
import { expect } from "vitest";
import { type ClaimOverrides, createTestSigner, type TestSigner, testUserId } from "./tokens.ts";

// The Worker tests' one client (workerd side): requests go to the Worker's default export as a
// client on the network sends them, signed in with session tokens the Worker's CLERK_JWT_KEY
// accepts, or as the runner with RUNNER_TOKEN.

/** The Worker's origin in these tests (not one CORS_ORIGINS lists, see vitest.config.ts). */
export const WORKER_ORIGIN = "http://example.com";

/** The smallest job the API accepts: one step that does nothing. */
export const BUILD_SPEC = { steps: [{ name: "Build", phase: "build", command: "true" }] };

let signer: Promise<TestSigner> | undefined;

/** Signs with the private half of CLERK_JWT_KEY; the key is imported once per test file. */
export function testSigner(): Promise<TestSigner> {
  signer ??= createTestSigner(env.TEST_CLERK_SIGNING_JWK);
  return signer;
}

/** A request to the Worker, by path. */
export function call(path: string, init: RequestInit = {}): Promise<Response> {
  return exports.default.fetch(`${WORKER_ORIGIN}${path}`, init);
}

/** `headers` with the token as a Bearer credential in front; null: an anonymous call. */
export function bearer(
  token: string | null,
  headers: Record<string, string> = {},
): Record<string, string> {
  return token === null ? headers : { Authorization: `Bearer ${token}`, ...headers };
}

export interface GetOptions {
  readonly headers?: Record<string, string>;
  readonly signal?: AbortSignal;
}

/** A GET with the token (null: none). */
export function getWith(
  token: string | null,
  path: string,
  options: GetOptions = {},
): Promise<Response> {
  return call(path, {
    headers: bearer(token, options.headers),
    ...(options.signal === undefined ? {} : { signal: options.signal }),
  });
}

/**
 * Where a viewer resumes: Last-Event-ID as EventSource sends it (not at all while empty), or
 * ?after= as a page does.
 */
export interface StreamOptions {
  readonly lastEventId?: string;
  readonly after?: string;
  readonly signal?: AbortSignal;
}

/** Opens the job's SSE stream with the token. */
export function streamWith(
  token: string,
  jobId: string,
  options: StreamOptions = {},
): Promise<Response> {
  const query = options.after === undefined ? "" : `?after=${encodeURIComponent(options.after)}`;
  return getWith(token, `/api/jobs/${jobId}/logs/stream${query}`, {
    ...(options.lastEventId ? { headers: { "Last-Event-ID": options.lastEventId } } : {}),
    ...(options.signal === undefined ? {} : { signal: options.signal }),
  });
}

/** A JSON POST with the token (null: none); a string body is sent as it is. */
export function postWith(
  token: string | null,
  path: string,
  body: unknown,
  headers: Record<string, string> = {},
): Promise<Response> {
  return call(path, {
    method: "POST",
    headers: bearer(token, { "Content-Type": "application/json", ...headers }),
    body: typeof body === "string" ? body : JSON.stringify(body),
  });
}

/** A signed-in user of the API: a Clerk user id and its session token, signed on first use. */
export interface TestUser {
  readonly id: string;
  token(): Promise<string>;
  get(path: string, options?: GetOptions): Promise<Response>;
  stream(jobId: string, options?: StreamOptions): Promise<Response>;
  post(path: string, body: unknown, headers?: Record<string, string>): Promise<Response>;
  /** POST /api/jobs: the job's id, once the answer is 201. */
  createJob(spec?: unknown): Promise<string>;
}

/**
 * A user with its own id (a fresh one by default) whose token carries `claims` over Clerk's
 * defaults: valid for 60 s from its first use unless `exp` says otherwise.
 */
export function testUser(id: string = testUserId(), claims: ClaimOverrides = {}): TestUser {
  let signed: Promise<string> | undefined;
  const token = (): Promise<string> => {
    signed ??= testSigner().then((s) => s.sign({ sub: id, ...claims }));
    return signed;
  };
  return {
    id,
    token,
    get: async (path, options) => getWith(await token(), path, options),
    stream: async (jobId, options) => streamWith(await token(), jobId, options),
    post: async (path, body, headers) => postWith(await token(), path, body, headers),
    async createJob(spec = BUILD_SPEC) {
      const response = await postWith(await token(), "/api/jobs", spec);
      expect(response.status).toBe(201);
      return ((await response.json()) as { id: string }).id;
    },
  };
}

/** A token for the user that expired an hour ago (signed correctly, as Clerk issued it then). */
export async function expiredToken(id: string): Promise<string> {
  const past = Math.floor(Date.now() / 1000) - 3600;
  return (await testSigner()).sign({ sub: id, iat: past, nbf: past - 10, exp: past + 60 });
}

/**
 * POST /internal/jobs/:id/<route> as the runner calls it: RUNNER_TOKEN unless `token` says
 * otherwise (null: none), the body as JSON.
 */
export function asRunner(
  jobId: string,
  route: string,
  options: { readonly body?: unknown; readonly token?: string | null } = {},
): Promise<Response> {
  const token = options.token === undefined ? env.RUNNER_TOKEN : options.token;
  if (options.body === undefined)
    return call(`/internal/jobs/${jobId}/${route}`, { method: "POST", headers: bearer(token) });
  return postWith(token, `/internal/jobs/${jobId}/${route}`, options.body);
}

/** The error an API answer carries. */
export async function errorOf(response: Response): Promise<{ code: string; message: string }> {
  return ((await response.json()) as { error: { code: string; message: string } }).error;
}
