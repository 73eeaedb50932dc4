import { env } from "cloudflare:workers";
import type { MiddlewareHandler } from "hono";
import { Hono } from "hono";
import { HTTPException } from "hono/http-exception";
import { afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import {
  type AuthVariables,
  type ClerkAuthOptions,
  clerkAuth,
  clerkAuthFromEnv,
} from "../../src/http/auth.ts";
import { ApiError, type ErrorBody } from "../../src/shared/errors.ts";
import {
  base64UrlText,
  signWithFreshKey,
  type TestSigner,
  tamperPayload,
  testUserId,
  unsignedToken,
} from "../support/tokens.ts";
import { testSigner } from "../support/worker-client.ts";

const authorizedParties = ["http://localhost:3000", "https://app.example.com"];
const now = (): number => Math.floor(Date.now() / 1000);

// A route behind the middleware, and an onError that renders errors with c.json as src/index.ts
// does (so headers the middleware sets must survive it).
function appWith<E extends { Variables: AuthVariables }>(
  auth: MiddlewareHandler<E>,
  onError?: (error: Error) => void,
): Hono<E> {
  const app = new Hono<E>();
  app.use(auth);
  app.get("/me", (c) => c.json({ userId: c.var.userId, sessionId: c.var.sessionId }));
  app.onError((error, c) => {
    onError?.(error);
    if (error instanceof ApiError)
      return c.json<ErrorBody>(
        { error: { code: error.code, message: error.message } },
        error.status,
      );
    if (error instanceof HTTPException)
      return c.json<ErrorBody>(
        { error: { code: "http_error", message: error.message } },
        error.status,
      );
    return c.json<ErrorBody>({ error: { code: "internal", message: "internal error" } }, 500);
  });
  return app;
}

const bearer = (token: string): RequestInit => ({ headers: { Authorization: `Bearer ${token}` } });
const cookie = (token: string): RequestInit => ({ headers: { Cookie: `__session=${token}` } });

let signer: TestSigner;
beforeAll(async () => {
  signer = await testSigner();
});

afterEach(() => {
  vi.restoreAllMocks();
});

describe("clerkAuth with a PEM public key (networkless)", () => {
  const app = appWith(clerkAuth({ jwtKey: env.CLERK_JWT_KEY, authorizedParties }));
  const me = (init: RequestInit = {}): Promise<Response> =>
    Promise.resolve(app.request("/me", init));

  async function expectRejected(response: Response, code: string): Promise<void> {
    expect({ status: response.status, body: await response.json() }).toMatchObject({
      status: 401,
      body: { error: { code } },
    });
    expect(response.headers.get("WWW-Authenticate")).toMatch(/^Bearer\b/);
  }

  it("accepts a valid Bearer token and exposes the user and session ids", async () => {
    const sub = testUserId();
    const response = await me(bearer(await signer.sign({ sub, sid: "sess_bearer" })));
    expect(response.status).toBe(200);
    expect(await response.json()).toEqual({ userId: sub, sessionId: "sess_bearer" });
  });

  it("accepts a valid __session cookie", async () => {
    const sub = testUserId();
    const response = await me(cookie(await signer.sign({ sub })));
    expect(response.status).toBe(200);
    expect(await response.json()).toMatchObject({ userId: sub });
  });

  it("accepts the scheme in any case and a cookie among others", async () => {
    const sub = testUserId();
    expect(
      await (
        await me({ headers: { Authorization: `bearer ${await signer.sign({ sub })}` } })
      ).json(),
    ).toMatchObject({ userId: sub });
    const other = testUserId();
    const token = await signer.sign({ sub: other });
    expect(
      await (
        await me({ headers: { Cookie: `theme=dark; __session=${token}; __client_uat=1` } })
      ).json(),
    ).toMatchObject({ userId: other });
  });

  it("accepts every configured authorized party", async () => {
    const response = await me(bearer(await signer.sign({ azp: "https://app.example.com" })));
    expect(response.status).toBe(200);
  });

  it("answers 401 unauthenticated when no token is present", async () => {
    const response = await me();
    await expectRejected(response, "unauthenticated");
    expect(response.headers.get("WWW-Authenticate")).toBe("Bearer");
  });

  it("treats an empty __session cookie (Clerk's signed-out state) as no token", async () => {
    await expectRejected(await me({ headers: { Cookie: "__session=" } }), "unauthenticated");
  });

  it("passes over another Authorization scheme and falls back to the cookie", async () => {
    await expectRejected(
      await me({ headers: { Authorization: "Basic dXNlcjpwYXNz" } }),
      "unauthenticated",
    );
    const sub = testUserId();
    const response = await me({
      headers: {
        Authorization: "Basic dXNlcjpwYXNz",
        Cookie: `__session=${await signer.sign({ sub })}`,
      },
    });
    expect(await response.json()).toMatchObject({ userId: sub });
  });

  it("prefers the Bearer token to the cookie and does not fall back when it is invalid", async () => {
    const sub = testUserId();
    const valid = await signer.sign({ sub });
    const wins = await me({
      headers: { Authorization: `Bearer ${valid}`, Cookie: "__session=garbage" },
    });
    expect(await wins.json()).toMatchObject({ userId: sub });
    const expired = await signer.sign({ exp: now() - 60 });
    await expectRejected(
      await me({ headers: { Authorization: `Bearer ${expired}`, Cookie: `__session=${valid}` } }),
      "token_expired",
    );
  });

  it.each([
    ["a word", "abc"],
    ["three parts that are not base64url JSON", "a.b.c"],
    ["characters outside base64url", "%%%.^^^.***"],
    ["a header that is not JSON", `${base64UrlText("not json")}.${base64UrlText("{}")}.c2ln`],
    ["an empty Bearer credential", ""],
    ["four parts", "a.b.c.d"],
    [
      "a header that is JSON but not an object",
      `${base64UrlText("null")}.${base64UrlText("{}")}.c2ln`,
    ],
    [
      "a payload that is JSON but not an object",
      `${base64UrlText('{"alg":"RS256","kid":"ins_test"}')}.${base64UrlText("null")}.c2ln`,
    ],
  ])("answers 401 invalid_token for a malformed token: %s", async (_name, token) => {
    await expectRejected(await me(bearer(token)), "invalid_token");
    if (token !== "") await expectRejected(await me(cookie(token)), "invalid_token");
  });

  it("answers 401 token_expired for an expired token", async () => {
    const response = await me(
      bearer(await signer.sign({ iat: now() - 120, nbf: now() - 130, exp: now() - 60 })),
    );
    await expectRejected(response, "token_expired");
    expect(response.headers.get("WWW-Authenticate")).toBe('Bearer error="invalid_token"');
  });

  it("answers 401 invalid_token for a token not yet valid (nbf) or issued in the future (iat)", async () => {
    await expectRejected(
      await me(bearer(await signer.sign({ nbf: now() + 600, exp: now() + 900 }))),
      "invalid_token",
    );
    await expectRejected(
      await me(bearer(await signer.sign({ iat: now() + 600, exp: now() + 900 }))),
      "invalid_token",
    );
  });

  it("answers 401 invalid_token for a token signed by another key", async () => {
    await expectRejected(await me(bearer(await signWithFreshKey())), "invalid_token");
  });

  it("answers 401 invalid_token for an unsigned token (alg: none)", async () => {
    await expectRejected(await me(bearer(unsignedToken())), "invalid_token");
    await expectRejected(await me(cookie(unsignedToken())), "invalid_token");
  });

  it("answers 401 invalid_token when the header claims an algorithm Clerk does not sign with", async () => {
    await expectRejected(
      await me(bearer(await signer.sign({}, { alg: "HS256" }))),
      "invalid_token",
    );
  });

  it("answers 401 invalid_token for a tampered payload (sub changed, signature kept)", async () => {
    const token = await signer.sign({ sub: testUserId() });
    await expectRejected(
      await me(bearer(tamperPayload(token, { sub: testUserId() }))),
      "invalid_token",
    );
  });

  it("answers 401 invalid_token when azp is not an authorized party, or missing", async () => {
    await expectRejected(
      await me(bearer(await signer.sign({ azp: "https://evil.example.com" }))),
      "invalid_token",
    );
    await expectRejected(await me(bearer(await signer.sign({ azp: undefined }))), "invalid_token");
  });

  it("answers 401 invalid_token for a token without a subject", async () => {
    await expectRejected(await me(bearer(await signer.sign({ sub: undefined }))), "invalid_token");
  });

  it("answers 401 invalid_token, not an outage, for a correctly signed payload that is not an object", async () => {
    await expectRejected(
      await me(bearer(await signer.sign({}, { rawPayload: "null" }))),
      "invalid_token",
    );
    await expectRejected(
      await me(bearer(await signer.sign({}, { rawPayload: "42" }))),
      "invalid_token",
    );
  });

  it("treats a session with pending tasks as signed out, as Clerk does by default", async () => {
    await expectRejected(
      await me(bearer(await signer.sign({ sts: "pending" }))),
      "unauthenticated",
    );
    expect((await me(bearer(await signer.sign({ sts: "active" })))).status).toBe(200);
  });

  it("never writes a rejected token to the log", async () => {
    const calls: unknown[][] = [];
    for (const method of ["log", "info", "warn", "error", "debug"] as const) {
      vi.spyOn(console, method).mockImplementation((...args: unknown[]) => void calls.push(args));
    }
    const tokens = [
      await signer.sign({ exp: now() - 60 }),
      await signWithFreshKey(),
      unsignedToken(),
      tamperPayload(await signer.sign(), { sub: testUserId() }),
      await signer.sign({ azp: "https://evil.example.com" }),
      "abc.def.ghi",
    ];
    for (const token of tokens) expect((await me(bearer(token))).status).toBe(401);
    const logged = JSON.stringify(calls);
    for (const token of tokens) expect(logged).not.toContain(token);
  });

  it("renders its errors as {error: {code}} with the challenge also under Hono's default error handler", async () => {
    const bare = new Hono<{ Variables: AuthVariables }>();
    bare.use(clerkAuth({ jwtKey: env.CLERK_JWT_KEY }));
    bare.get("/me", (c) => c.text(c.var.userId));
    const response = await bare.request("/me", bearer(await signWithFreshKey()));
    await expectRejected(response, "invalid_token");
  });
});

describe("clerkAuth with a secret key (JWKS from Clerk's Backend API)", () => {
  // test/support/clerk-api-server.ts on loopback, reached through workerd's own fetch. It serves the
  // JWKS of the key test tokens are signed with (kid "ins_test") to the secret keys it was told of.
  const apiUrl = env.TEST_CLERK_API_URL;
  type ClerkApiMode = "ok" | "fail" | "down";
  interface SeenRequest {
    method: string;
    path: string;
    authorization: string | null;
  }

  afterEach(() => {
    vi.useRealTimers();
  });

  // Clerk caches a JWKS per API URL and secret key for the isolate's lifetime: every test has its
  // own key, which the server accepts once told how to answer for it.
  async function clerkInstance(mode: ClerkApiMode): Promise<string> {
    const secretKey = uniqueSecretKey();
    await setMode(secretKey, mode);
    return secretKey;
  }
  const uniqueSecretKey = (): string => `sk_test_${crypto.randomUUID().replaceAll("-", "")}`;

  async function setMode(secretKey: string, mode: ClerkApiMode): Promise<void> {
    const response = await fetch(`${apiUrl}/__control`, {
      method: "POST",
      body: JSON.stringify({ secretKey, mode }),
    });
    expect(response.status).toBe(204);
  }

  async function requestsWith(secretKey: string): Promise<SeenRequest[]> {
    const response = await fetch(`${apiUrl}/__control?secretKey=${encodeURIComponent(secretKey)}`);
    const { requests }: { requests: SeenRequest[] } = await response.json();
    return requests;
  }

  // Clerk retries a failed JWKS fetch five times with backoff (about 2 to 4 s in all). Fake timers
  // skip the waits; the loopback I/O between them still takes real time, which scheduler.wait
  // (not faked) lets pass.
  async function withoutBackoff(request: () => Response | Promise<Response>): Promise<Response> {
    vi.useFakeTimers({ toFake: ["setTimeout"] });
    const pending = Promise.resolve(request());
    let settled = false;
    pending.then(
      () => (settled = true),
      () => (settled = true),
    );
    while (!settled) {
      await vi.advanceTimersToNextTimerAsync();
      await scheduler.wait(5);
    }
    return pending;
  }

  it("fetches the JWKS once with the secret key and verifies against it", async () => {
    const secretKey = await clerkInstance("ok");
    const app = appWith(clerkAuth({ secretKey, apiUrl, authorizedParties }));
    for (let i = 0; i < 2; i++) {
      const sub = testUserId();
      const response = await app.request("/me", bearer(await signer.sign({ sub })));
      expect(await response.json()).toMatchObject({ userId: sub });
    }
    expect(await requestsWith(secretKey)).toEqual([
      { method: "GET", path: "/v1/jwks", authorization: `Bearer ${secretKey}` },
    ]);
  });

  it("answers 401 invalid_token for a token whose kid is not in the JWKS", async () => {
    const secretKey = await clerkInstance("ok");
    const app = appWith(clerkAuth({ secretKey, apiUrl }));
    const response = await app.request("/me", bearer(await signer.sign({}, { kid: "ins_other" })));
    expect({ status: response.status, body: await response.json() }).toMatchObject({
      status: 401,
      body: { error: { code: "invalid_token" } },
    });
    expect((await requestsWith(secretKey)).length).toBeGreaterThan(0);
  });

  it("answers 401 invalid_token for a token signed by another key with the JWKS's kid", async () => {
    const app = appWith(clerkAuth({ secretKey: await clerkInstance("ok"), apiUrl }));
    const response = await app.request("/me", bearer(await signWithFreshKey()));
    expect({ status: response.status, body: await response.json() }).toMatchObject({
      status: 401,
      body: { error: { code: "invalid_token" } },
    });
  });

  it.each<[string, () => Promise<string>]>([
    ["Clerk's API fails", () => clerkInstance("fail")],
    ["the connection is lost", () => clerkInstance("down")],
    ["Clerk does not know the secret key", () => Promise.resolve(uniqueSecretKey())],
  ])(
    "answers 503 auth_unavailable, not 401, when the JWKS cannot be loaded (%s), and logs no token",
    async (_name, instance) => {
      const secretKey = await instance();
      const logged: unknown[][] = [];
      vi.spyOn(console, "error").mockImplementation((...args: unknown[]) => void logged.push(args));
      const app = appWith(clerkAuth({ secretKey, apiUrl }));
      const token = await signer.sign();
      const response = await withoutBackoff(() => app.request("/me", bearer(token)));
      expect({ status: response.status, body: await response.json() }).toMatchObject({
        status: 503,
        body: { error: { code: "auth_unavailable" } },
      });
      expect(response.headers.get("WWW-Authenticate")).toBeNull();
      expect((await requestsWith(secretKey)).length).toBeGreaterThan(1); // Clerk retried before giving up
      expect(logged.length).toBe(1);
      expect(JSON.stringify(logged)).not.toContain(token);
    },
  );

  it("verifies again once Clerk's API is back, having cached no failure", async () => {
    const secretKey = await clerkInstance("fail");
    vi.spyOn(console, "error").mockImplementation(() => undefined);
    const app = appWith(clerkAuth({ secretKey, apiUrl }));
    const token = await signer.sign();
    expect((await withoutBackoff(() => app.request("/me", bearer(token)))).status).toBe(503);
    await setMode(secretKey, "ok");
    const sub = testUserId();
    const response = await app.request("/me", bearer(await signer.sign({ sub })));
    expect(await response.json()).toMatchObject({ userId: sub });
  });
});

describe("clerkAuth's authorized parties", () => {
  it("are not enforced when none are configured", async () => {
    const app = appWith(clerkAuth({ jwtKey: env.CLERK_JWT_KEY, authorizedParties: [] }));
    const response = await app.request(
      "/me",
      bearer(await signer.sign({ azp: "https://anywhere.example.com" })),
    );
    expect(response.status).toBe(200);
  });
});

describe("clerkAuth's options", () => {
  it.each<[string, ClerkAuthOptions]>([
    ["no options", {}],
    ["empty keys", { jwtKey: "", secretKey: " " }],
  ])("throws at creation, naming both keys, without jwtKey or secretKey: %s", (_name, options) => {
    expect(() => clerkAuth(options)).toThrow(
      /jwtKey \(CLERK_JWT_KEY.*secretKey \(CLERK_SECRET_KEY/,
    );
  });

  it.each<[string, ClerkAuthOptions, RegExp]>([
    ["a jwtKey that is not a PEM public key", { jwtKey: "sk_test_not_a_pem" }, /jwtKey/],
    [
      "a PEM with escaped newlines",
      { jwtKey: "-----BEGIN PUBLIC KEY-----\\nMIIBIjAN\\n-----END PUBLIC KEY-----" },
      /jwtKey/,
    ],
    [
      "an authorized party with a trailing slash",
      { secretKey: "sk_test_x", authorizedParties: ["https://app.example.com/"] },
      /authorizedParties/,
    ],
    [
      "an authorized party without a scheme",
      { secretKey: "sk_test_x", authorizedParties: ["app.example.com"] },
      /authorizedParties/,
    ],
    ["a negative clock skew", { secretKey: "sk_test_x", clockSkewInMs: -1 }, /clockSkewInMs/],
    [
      "an API URL that is not a URL",
      { secretKey: "sk_test_x", apiUrl: "api.clerk.com" },
      /apiUrl \(CLERK_API_URL\)/,
    ],
    [
      "an API URL that is not http(s)",
      { secretKey: "sk_test_x", apiUrl: "ftp://api.clerk.com" },
      /apiUrl \(CLERK_API_URL\)/,
    ],
  ])("throws at creation for %s", (_name, options, problem) => {
    expect(() => clerkAuth(options)).toThrow(problem);
  });

  it("accepts either key alone (a secret key is not used until a request)", () => {
    expect(() => clerkAuth({ secretKey: "sk_test_x" })).not.toThrow();
    expect(() => clerkAuth({ jwtKey: env.CLERK_JWT_KEY })).not.toThrow();
  });

  it("applies clockSkewInMs to expiry", async () => {
    const lenient = appWith(clerkAuth({ jwtKey: env.CLERK_JWT_KEY, clockSkewInMs: 120_000 }));
    expect(
      (await lenient.request("/me", bearer(await signer.sign({ exp: now() - 60 })))).status,
    ).toBe(200);
  });
});

describe("clerkAuthFromEnv", () => {
  it("verifies with CLERK_JWT_KEY and CLERK_AUTHORIZED_PARTIES from the Worker env", async () => {
    const app = appWith(clerkAuthFromEnv());
    const sub = testUserId();
    const ok = await app.request(
      "/me",
      bearer(await signer.sign({ sub, azp: "https://app.example.com" })),
      env,
    );
    expect(ok.status).toBe(200);
    expect(await ok.json()).toMatchObject({ userId: sub });
    const cookieOk = await app.request("/me", cookie(await signer.sign({ sub })), env);
    expect(await cookieOk.json()).toMatchObject({ userId: sub });
    const foreign = await app.request(
      "/me",
      bearer(await signer.sign({ azp: "https://evil.example.com" })),
      env,
    );
    expect({ status: foreign.status, body: await foreign.json() }).toMatchObject({
      status: 401,
      body: { error: { code: "invalid_token" } },
    });
    const missing = await app.request("/me", {}, env);
    expect({ status: missing.status, body: await missing.json() }).toMatchObject({
      status: 401,
      body: { error: { code: "unauthenticated" } },
    });
  });

  it("fetches the JWKS from CLERK_API_URL with CLERK_SECRET_KEY when CLERK_JWT_KEY is empty", async () => {
    const secretKey = `sk_test_${crypto.randomUUID().replaceAll("-", "")}`;
    const control = await fetch(`${env.TEST_CLERK_API_URL}/__control`, {
      method: "POST",
      body: JSON.stringify({ secretKey, mode: "ok" }),
    });
    expect(control.status).toBe(204);
    const app = appWith(clerkAuthFromEnv());
    const bySecretKey: Env = {
      ...env,
      CLERK_JWT_KEY: "",
      CLERK_SECRET_KEY: secretKey,
      CLERK_API_URL: env.TEST_CLERK_API_URL,
    };
    const sub = testUserId();
    const response = await app.request("/me", bearer(await signer.sign({ sub })), bySecretKey);
    expect(await response.json()).toMatchObject({ userId: sub });
    const seen = await fetch(`${env.TEST_CLERK_API_URL}/__control?secretKey=${secretKey}`);
    expect(await seen.json()).toMatchObject({
      requests: [{ path: "/v1/jwks", authorization: `Bearer ${secretKey}` }],
    });
  });

  it("keeps one configuration per env object", async () => {
    const app = appWith(clerkAuthFromEnv());
    const token = await signer.sign({ azp: "http://localhost:3000" });
    const elsewhere: Env = { ...env, CLERK_AUTHORIZED_PARTIES: "https://other.example.com" };
    expect((await app.request("/me", bearer(token), elsewhere)).status).toBe(401);
    expect((await app.request("/me", bearer(token), env)).status).toBe(200);
    expect((await app.request("/me", bearer(token), elsewhere)).status).toBe(401);
  });

  it("fails every request with a message naming the variables when neither key is set", async () => {
    const errors: Error[] = [];
    const app = appWith(clerkAuthFromEnv(), (error) => errors.push(error));
    const unconfigured: Env = { ...env, CLERK_JWT_KEY: "", CLERK_SECRET_KEY: "" };
    const response = await app.request("/me", bearer(await signer.sign()), unconfigured);
    expect(response.status).toBe(500);
    expect(errors[0]?.message).toMatch(/CLERK_JWT_KEY.*CLERK_SECRET_KEY/);
  });
});
