import type { Context, Env as HonoEnv, MiddlewareHandler } from "hono";
import { createMiddleware } from "hono/factory";
import { timingSafeEqual } from "hono/utils/buffer";
import { errorBody } from "./errors.ts";

// The runner token authenticates the Worker and the runner to each other, in both directions:
// the queue consumer calls the runner's POST /jobs, the runner calls the Worker's /internal/*.

/** The Authorization header value that carries the runner token. */
export function runnerAuthorization(token: string): string {
  return `Bearer ${token}`;
}

/**
 * Lets a request through only with `Authorization: Bearer <the runner token>`, compared in
 * constant time (hashed first, so the length leaks nothing). Anything else, a malformed header
 * included, is the same 401 {error: {code: "unauthenticated"}}: Hono's bearerAuth would answer
 * 400 for a malformed header, and in its own body shape.
 */
export function runnerTokenAuth<E extends HonoEnv>(
  expectedToken: (c: Context<E>) => string,
): MiddlewareHandler<E> {
  return createMiddleware<E>(async (c, next) => {
    const expected = expectedToken(c);
    const header = c.req.header("Authorization") ?? "";
    const token = header.startsWith("Bearer ") ? header.slice("Bearer ".length) : "";
    if (expected === "" || token === "" || !(await timingSafeEqual(token, expected)))
      return c.json(errorBody("unauthenticated", "the runner token is missing or wrong"), 401);
    await next();
  });
}
