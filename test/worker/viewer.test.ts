import { createExecutionContext } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import worker from "../../src/index.ts";
import { createJob, testRedis } from "../support/jobs.ts";
import { uniqueJobId } from "../support/redis.ts";
import { call, expiredToken, testUser, WORKER_ORIGIN } from "../support/worker-client.ts";

// The viewer page as the Worker serves it, and the development sign-in. What the page does in a
// browser is tested in a real one: test/browser/viewer.test.ts.
const redis = testRedis(env);
const owner = testUser();

async function sha256Base64(text: string): Promise<string> {
  const digest = new Uint8Array(
    await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text)),
  );
  return btoa(String.fromCharCode(...digest));
}

function directives(csp: string): Map<string, string[]> {
  return new Map(
    csp.split(";").map((directive) => {
      const [name = "", ...values] = directive.trim().split(/\s+/);
      return [name, values];
    }),
  );
}

describe("GET /jobs/:id", () => {
  it("serves the viewer page to anyone, for any well-formed id: the data is behind the API", async () => {
    const response = await call(`/jobs/${uniqueJobId("page")}`);
    expect(response.status).toBe(200);
    expect(response.headers.get("Content-Type")).toBe("text/html; charset=utf-8");
    expect(response.headers.get("X-Content-Type-Options")).toBe("nosniff");
    expect(response.headers.get("Referrer-Policy")).toBe("no-referrer");
    const html = await response.text();
    expect(html).toMatch(/^<!doctype html>/);
    expect(html).toContain('<main id="log"');
    expect(html).toContain("/logs.txt");
  });

  it("allows exactly its own inline script and style, by hash, and nothing inline besides", async () => {
    const response = await call(`/jobs/${uniqueJobId("csp")}`);
    const html = await response.text();
    const csp = directives(response.headers.get("Content-Security-Policy") ?? "");
    expect(csp.get("default-src")).toEqual(["'self'"]);
    expect(csp.get("object-src")).toEqual(["'none'"]);
    expect(csp.get("base-uri")).toEqual(["'none'"]);
    expect(csp.get("frame-ancestors")).toEqual(["'none'"]);
    const scripts = [...html.matchAll(/<script\b([^>]*)>([\s\S]*?)<\/script>/g)];
    const styles = [...html.matchAll(/<style>([\s\S]*?)<\/style>/g)];
    expect(scripts).toHaveLength(1);
    expect(scripts[0]?.[1]).toBe(' type="module"');
    expect(styles).toHaveLength(1);
    expect(csp.get("script-src")).toEqual([
      `'sha256-${await sha256Base64(scripts[0]?.[2] ?? "")}'`,
    ]);
    expect(csp.get("style-src")).toEqual([`'sha256-${await sha256Base64(styles[0]?.[1] ?? "")}'`]);
    expect(response.headers.get("Content-Security-Policy")).not.toMatch(
      /unsafe-inline|unsafe-eval/,
    );
    // No inline event handler or style attribute: the policy would block them anyway.
    expect(html).not.toMatch(/\son[a-z]+\s*=/i);
    expect(html).not.toMatch(/\sstyle\s*=/i);
  });

  it("with a Clerk publishable key, loads Clerk's SDK and allows exactly it and its Frontend API", async () => {
    const vars: Env = {
      ...env,
      CLERK_SIGN_IN_URL: "https://accounts.example.com/sign-in",
      CLERK_PUBLISHABLE_KEY: `pk_live_${btoa("clerk.example.com$")}`,
    };
    const response = await worker.fetch(
      new Request(`${WORKER_ORIGIN}/jobs/${uniqueJobId("clerk")}`),
      vars,
      createExecutionContext(),
    );
    const html = await response.text();
    const sdk = "https://clerk.example.com/npm/@clerk/clerk-js@5/dist/clerk.browser.js";
    const csp = directives(response.headers.get("Content-Security-Policy") ?? "");
    expect(csp.get("script-src")?.slice(1)).toEqual([sdk]);
    expect(csp.get("connect-src")).toEqual(["'self'", "https://clerk.example.com"]);
    const tags = [...html.matchAll(/<script\b([^>]*)>/g)].map((match) => match[1]);
    expect(tags).toContain(
      ` async crossorigin="anonymous" data-clerk-publishable-key="${vars.CLERK_PUBLISHABLE_KEY}" src="${sdk}"`,
    );
    const config = /<meta name="build-log-config" content="([^"]*)">/.exec(html)?.[1] ?? "";
    expect(JSON.parse(config.replaceAll("&#34;", '"'))).toEqual({
      signInUrl: "https://accounts.example.com/sign-in",
      clerk: true,
    });
  });

  it("without one, loads no other script and calls only its own origin", async () => {
    const response = await call(`/jobs/${uniqueJobId("noclerk")}`);
    const csp = directives(response.headers.get("Content-Security-Policy") ?? "");
    expect(csp.get("script-src")).toHaveLength(1);
    expect(csp.get("connect-src")).toEqual(["'self'"]);
  });

  it.each([
    ["CLERK_SIGN_IN_URL", "javascript:alert(1)"],
    ["CLERK_PUBLISHABLE_KEY", "pk_live_bm90IGEga2V5"],
    ["CLERK_PUBLISHABLE_KEY", `pk_live_${btoa('"><script>alert(1)</script>$')}`],
    ["CLERK_JS_URL", "data:text/javascript,alert(1)"],
  ])("refuses to serve the page with a bad %s (a 500 naming it)", async (name, value) => {
    const vars = {
      ...env,
      CLERK_PUBLISHABLE_KEY: `pk_test_${btoa("clerk.example.com$")}`,
      [name]: value,
    } as Env;
    const response = await worker.fetch(
      new Request(`${WORKER_ORIGIN}/jobs/${uniqueJobId("badclerk")}`),
      vars,
      createExecutionContext(),
    );
    expect(response.status).toBe(500);
  });

  it.each(["bad*id", "a%3Ab", "x".repeat(65), "-leading-dash"])(
    "answers the malformed id %j with 400",
    async (id) => {
      const response = await call(`/jobs/${id}`);
      expect(response.status).toBe(400);
      expect(await response.json()).toMatchObject({ error: { code: "invalid_job_id" } });
    },
  );
});

describe("GET /dev/sign-in", () => {
  const devEnv = { ...env, DEV_SIGN_IN: "1" };
  const signIn = (query: string, vars: Env = devEnv): Promise<Response> =>
    Promise.resolve(
      worker.fetch(
        new Request(`${WORKER_ORIGIN}/dev/sign-in?${query}`, { redirect: "manual" }),
        vars,
        createExecutionContext(),
      ),
    );

  it("does not exist unless DEV_SIGN_IN=1", async () => {
    for (const vars of [env, { ...env, DEV_SIGN_IN: "true" }]) {
      const response = await signIn(`token=${await owner.token()}&next=/jobs/x`, vars);
      expect(response.status).toBe(404);
      expect(await response.json()).toMatchObject({ error: { code: "not_found" } });
      expect(response.headers.get("Set-Cookie")).toBeNull();
    }
  });

  it("verifies the token, sets the __session cookie the API accepts and redirects to next", async () => {
    const jobId = uniqueJobId("dev-sign-in");
    await createJob(redis, jobId, owner.id);
    const response = await signIn(
      `token=${await owner.token()}&next=${encodeURIComponent(`/jobs/${jobId}`)}`,
    );
    expect(response.status).toBe(303);
    expect(response.headers.get("Location")).toBe(`/jobs/${jobId}`);
    expect(response.headers.get("Cache-Control")).toBe("no-store");
    const cookie = response.headers.get("Set-Cookie") ?? "";
    expect(cookie).toMatch(
      new RegExp(
        `^__session=${(await owner.token()).replaceAll(".", "\\.")}; Path=/; HttpOnly; SameSite=Lax$`,
      ),
    );
    const job = await call(`/api/jobs/${jobId}`, {
      headers: { Cookie: cookie.split(";")[0] ?? "" },
    });
    expect(job.status).toBe(200);
    expect(await job.json()).toMatchObject({ id: jobId, owner: owner.id });
  });

  it.each([
    ["an expired token", () => expiredToken(owner.id), "token_expired"],
    ["a malformed token", async () => "not.a.jwt", "invalid_token"],
  ])("refuses %s with 401 and sets no cookie", async (_case, token, code) => {
    const response = await signIn(`token=${await token()}&next=/jobs/x`);
    expect(response.status).toBe(401);
    expect(await response.json()).toMatchObject({ error: { code } });
    expect(response.headers.get("Set-Cookie")).toBeNull();
  });

  it("asks for a token", async () => {
    const response = await signIn("next=/jobs/x");
    expect(response.status).toBe(400);
    expect(await response.json()).toMatchObject({ error: { code: "missing_token" } });
  });

  it.each([
    "//evil.example.com/x",
    "/\\evil.example.com",
    "https://evil.example.com/",
    "jobs/x",
    "/jobs/x%0d%0aSet-Cookie:%20a=b",
  ])("redirects only within this origin, not to %j", async (next) => {
    const response = await signIn(
      `token=${await owner.token()}&next=${encodeURIComponent(decodeURIComponent(next))}`,
    );
    expect(response.status).toBe(400);
    expect(await response.json()).toMatchObject({ error: { code: "invalid_next" } });
    expect(response.headers.get("Set-Cookie")).toBeNull();
  });
});
