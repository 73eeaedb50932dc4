import type { Env, MiddlewareHandler } from "hono";
import { bodyLimit } from "hono/body-limit";
import { createMiddleware } from "hono/factory";
import type { z } from "zod";
import { ApiError, type ErrorCode } from "./errors.ts";

export type Issues = { readonly issues: readonly z.core.$ZodIssue[] };

/** Every issue as `path: message`, for the message of a 400. */
export function describeIssues(error: Issues): string {
  return error.issues
    .map((issue) => `${issue.path.join(".") || "body"}: ${issue.message}`)
    .join("; ");
}

/**
 * Refuses a body over `maxBytes` before it is read, with a 413 `too_large`: "`what` is at most
 * `maxBytes` bytes".
 */
export function bodyAtMost(maxBytes: number, what: string): MiddlewareHandler {
  return bodyLimit({
    maxSize: maxBytes,
    onError: () => {
      throw new ApiError(413, "too_large", `${what} is at most ${maxBytes} bytes`);
    },
  });
}

/**
 * The body as JSON, checked by `schema`; read whatever its Content-Type says. Hono's json
 * validator reads only `application/json` bodies and answers malformed JSON with its own 400,
 * while clients here (curl -d, a fetch without headers) send JSON as text/plain or form: this
 * keeps that working and answers every failure with our codes.
 */
export function jsonBody<S extends z.ZodType<object>>(
  schema: S,
  code: ErrorCode,
): MiddlewareHandler<Env, string, { in: { json: z.input<S> }; out: { json: z.output<S> } }> {
  return createMiddleware(async (c, next) => {
    let body: unknown;
    try {
      body = await c.req.json();
    } catch {
      throw new ApiError(400, "invalid_json", "the body is not JSON");
    }
    const parsed = schema.safeParse(body);
    if (!parsed.success) throw new ApiError(400, code, describeIssues(parsed.error));
    c.req.addValidatedData("json", parsed.data);
    await next();
  });
}
