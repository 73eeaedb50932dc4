import { HTTPException } from "hono/http-exception";
import type { ContentfulStatusCode } from "hono/utils/http-status";

/**
 * The error contract of every HTTP face of the system (the Worker's routes, the Durable
 * Object's stream and the runner's service): the body is always `{error: {code, message}}`,
 * clients branch on `code`, which is stable, and show `message`, which may change. A list, not
 * only a type: the OpenAPI document's `code` enum is read from it (src/http/openapi.ts).
 */
export const ERROR_CODES = [
  // any route
  "not_found",
  "http_error",
  "internal",
  "invalid_json",
  "too_large",
  "csrf_rejected",
  // sessions and the runner token
  "unauthenticated",
  "invalid_token",
  "token_expired",
  "auth_unavailable",
  // stream tickets
  "malformed_ticket",
  "invalid_ticket",
  "ticket_expired",
  "ticket_wrong_job",
  // jobs and their logs
  "invalid_job_id",
  "invalid_cursor",
  "invalid_limit",
  "invalid_line",
  "line_not_found",
  "invalid_query",
  "invalid_kind",
  "invalid_status",
  "invalid_job",
  "job_not_found",
  "too_many_viewers",
  "rate_limited",
  "queue_unavailable",
  "job_ended",
  "store_unavailable",
  // the development sign-in
  "missing_token",
  "invalid_next",
  // the runner service
  "runner_busy",
  "claim_failed",
  "invalid_cancel",
  "job_not_running",
  "invalid_push",
  "upgrade_required",
  "sealed_values_invalid",
] as const;
export type ErrorCode = (typeof ERROR_CODES)[number];

export interface ErrorBody {
  readonly error: { readonly code: ErrorCode; readonly message: string };
}

export function errorBody(code: ErrorCode, message: string): ErrorBody {
  return { error: { code, message } };
}

/**
 * An HTTP error with a stable machine code; the body is always `{error: {code, message}}`.
 * Thrown from a route or middleware on either side (the Worker's app renders it in onError,
 * the runner's through Hono's default handler, which calls getResponse()).
 */
export class ApiError extends HTTPException {
  readonly code: ErrorCode;
  constructor(
    status: ContentfulStatusCode,
    code: ErrorCode,
    message: string,
    options: { cause?: unknown } = {},
  ) {
    super(status, { message, cause: options.cause });
    this.code = code;
  }

  override getResponse(): Response {
    return Response.json(errorBody(this.code, this.message), { status: this.status });
  }
}
