import type { Context, MiddlewareHandler } from "hono";
import { createMiddleware } from "hono/factory";
import { ApiError } from "../shared/errors.ts";
import { sessionCredentialOf } from "./auth.ts";

export interface CsrfOptions {
  /** Origins besides the Worker's own whose pages may send cookie-authenticated requests. */
  readonly allowedOrigins: (c: Context) => ReadonlySet<string>;
}

const SAFE_METHODS = new Set(["GET", "HEAD", "OPTIONS"]);

/**
 * Cross-site request forgery: the browser attaches the `__session` cookie to a request any page
 * makes, including a page on another origin of the same site (SameSite=Lax does not stop it).
 * So a cookie-authenticated request that changes anything must be `application/json`, which a
 * form or a `no-cors` fetch cannot send and a cross-origin `fetch` sends only after a preflight
 * that CORS refuses, and must come from an origin we serve (`Origin`, else `Sec-Fetch-Site:
 * same-origin`). Anything else is 403 `csrf_rejected`. A Bearer token is not sent by a browser
 * on its own, so Bearer calls pass untouched.
 *
 * Written here rather than with hono/csrf: that one checks the origin only for form content
 * types, and lets any other content type through unchecked.
 */
export function csrfProtection(options: CsrfOptions): MiddlewareHandler {
  return createMiddleware(async (c, next) => {
    if (SAFE_METHODS.has(c.req.method) || sessionCredentialOf(c)?.from !== "cookie") return next();
    const mediaType = (c.req.header("Content-Type") ?? "").split(";")[0]?.trim().toLowerCase();
    if (mediaType !== "application/json") {
      throw new ApiError(
        403,
        "csrf_rejected",
        "a request signed in with the session cookie must send Content-Type: application/json",
      );
    }
    const origin = c.req.header("Origin");
    if (origin !== undefined) {
      if (origin !== new URL(c.req.url).origin && !options.allowedOrigins(c).has(origin)) {
        throw new ApiError(
          403,
          "csrf_rejected",
          `requests signed in with the session cookie are not accepted from ${JSON.stringify(origin.slice(0, 200))}`,
        );
      }
    } else if (c.req.header("Sec-Fetch-Site") !== "same-origin") {
      throw new ApiError(
        403,
        "csrf_rejected",
        "a request signed in with the session cookie must say where it comes from (Origin)",
      );
    }
    await next();
  });
}
