import { Hono } from "hono";
import { setCookie } from "hono/cookie";
import { describeRoute } from "hono-openapi";
import { workerConfig } from "../config.ts";
import { ApiError } from "../shared/errors.ts";
import { verifySessionTokenFromEnv } from "./auth.ts";
import viewerHtml from "./log-viewer.html";
import { errorResponses } from "./openapi.ts";
import { jobIdParam } from "./validate.ts";
import type { ViewerSettings } from "./viewer-settings.ts";

// The page's script and styles are inline and allowed by their SHA-256 alone: no other script
// or style runs, not even one a build's output managed to get into the DOM. With
// CLERK_PUBLISHABLE_KEY set, Clerk's browser SDK is the one script allowed by its URL, and
// Clerk's Frontend API the one other origin the page may call.
let inlineHashes: Promise<{ scripts: string; styles: string }> | undefined;
const pages = new Map<string, Promise<ViewerPage>>();

interface ViewerPage {
  readonly html: string;
  readonly headers: Record<string, string>;
}

async function sha256Source(text: string): Promise<string> {
  const digest = new Uint8Array(
    await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text)),
  );
  let binary = "";
  for (const byte of digest) binary += String.fromCharCode(byte);
  return `'sha256-${btoa(binary)}'`;
}

async function inlineSources(pattern: RegExp): Promise<string> {
  const blocks = [...viewerHtml.matchAll(pattern)].map((match) => match[1] ?? "");
  if (blocks.length === 0) throw new Error(`log-viewer.html: no block matches ${pattern}`);
  return (await Promise.all(blocks.map(sha256Source))).join(" ");
}

const escapeAttribute = (value: string): string =>
  value.replace(/[&"'<>]/g, (char) => `&#${char.charCodeAt(0)};`);

const CONFIG_META = '<meta name="build-log-config" content="{}">';

async function buildPage(settings: ViewerSettings): Promise<ViewerPage> {
  inlineHashes ??= Promise.all([
    inlineSources(/<script type="module">([\s\S]*?)<\/script>/g),
    inlineSources(/<style>([\s\S]*?)<\/style>/g),
  ]).then(([scripts, styles]) => ({ scripts, styles }));
  const { scripts, styles } = await inlineHashes;
  const config = JSON.stringify({
    signInUrl: settings.signInUrl,
    clerk: settings.publishableKey !== null,
  });
  let tags = `<meta name="build-log-config" content="${escapeAttribute(config)}">`;
  const clerk = settings.clerkJsUrl;
  if (clerk !== null && settings.publishableKey !== null)
    tags += `\n<script async crossorigin="anonymous" data-clerk-publishable-key="${escapeAttribute(settings.publishableKey)}" src="${escapeAttribute(clerk)}"></script>`;
  if (!viewerHtml.includes(CONFIG_META)) throw new Error("log-viewer.html: no config meta");
  const clerkOrigins =
    settings.frontendApi === null
      ? []
      : [
          ...new Set([
            `https://${settings.frontendApi}`,
            clerk === null ? "" : new URL(clerk).origin,
          ]),
        ].filter((origin) => origin !== "");
  return {
    html: viewerHtml.replace(CONFIG_META, tags),
    headers: {
      "Content-Type": "text/html; charset=utf-8",
      "Content-Security-Policy": [
        "default-src 'self'",
        `script-src ${scripts}${clerk === null ? "" : ` ${clerk}`}`,
        `style-src ${styles}`,
        `connect-src 'self'${clerkOrigins.map((origin) => ` ${origin}`).join("")}`,
        // data: for the empty favicon, which spares a request for /favicon.ico.
        "img-src 'self' data:",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
      ].join("; "),
      "X-Content-Type-Options": "nosniff",
      "Referrer-Policy": "no-referrer",
      "Cache-Control": "no-cache",
    },
  };
}

function viewerPage(env: Env): Promise<ViewerPage> {
  const settings = workerConfig(env).viewer;
  const key = JSON.stringify(settings);
  let page = pages.get(key);
  if (page === undefined) {
    page = buildPage(settings);
    pages.set(key, page);
  }
  return page;
}

/**
 * The log viewer: `GET /jobs/:id` serves one static page for any well-formed job id. It holds no
 * data; the page reads the job, its history and its live stream from /api/jobs/:id with the
 * same-origin `__session` cookie, so a person who is not signed in (or not the owner) sees the
 * API's answer there (and a link to sign in), not the log.
 */
export const viewer = new Hono<{ Bindings: Env }>().get(
  "/jobs/:id",
  describeRoute({
    summary: "The build page",
    description:
      "For a person: the page reads the job, its history and its stream from the API with " +
      "the same-origin `__session` cookie.",
    tags: ["pages"],
    responses: {
      200: { description: "the page", content: { "text/html": { schema: { type: "string" } } } },
      ...errorResponses({ 400: ["invalid_job_id"] }),
    },
  }),
  jobIdParam,
  async (c) => {
    const page = await viewerPage(c.env);
    return c.body(page.html, 200, page.headers);
  },
);

// Only a path on this origin: `//evil.example` and `/\evil.example` are other hosts to a browser.
function isLocalPath(value: string): boolean {
  return (
    /^\/(?![/\\])/.test(value) &&
    !/[\u0000-\u001f\u007f]/.test(value) &&
    URL.canParse(value, "http://local") &&
    new URL(value, "http://local").origin === "http://local"
  );
}

/**
 * Development only, enabled by DEV_SIGN_IN=1 (tools/dev/stack.ts sets it; production never
 * does): `GET /dev/sign-in?token=<session token>&next=/jobs/<id>` verifies the token exactly as
 * the API does, stores it in the `__session` cookie Clerk's frontend would set, and redirects to
 * `next`. Without the variable it does not exist (404).
 */
export const devSignIn = new Hono<{ Bindings: Env }>().get("/sign-in", async (c) => {
  if (!workerConfig(c.env).devSignIn)
    throw new ApiError(404, "not_found", `no route for GET ${new URL(c.req.url).pathname}`);
  const token = c.req.query("token") ?? "";
  if (token === "")
    throw new ApiError(400, "missing_token", "pass a development session token as ?token=");
  const next = c.req.query("next") ?? "/";
  if (!isLocalPath(next))
    throw new ApiError(
      400,
      "invalid_next",
      "next must be a path on this origin, such as /jobs/<id>",
    );
  await verifySessionTokenFromEnv(c, token);
  // HttpOnly: no script of ours needs it. A session cookie: the token's own exp still applies.
  setCookie(c, "__session", token, {
    path: "/",
    httpOnly: true,
    sameSite: "Lax",
    secure: new URL(c.req.url).protocol === "https:",
  });
  c.header("Cache-Control", "no-store");
  c.header("Referrer-Policy", "no-referrer");
  return c.redirect(next, 303);
});
