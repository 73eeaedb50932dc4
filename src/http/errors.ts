import { HTTPException } from "hono/http-exception";
import type { ContentfulStatusCode } from "hono/utils/http-status";

export interface ErrorBody {
  readonly error: { readonly code: string; readonly message: string };
}

/** An HTTP error with a stable machine code; the body is always `{error: {code, message}}`. */
export class ApiError extends HTTPException {
  readonly code: string;
  constructor(
    status: ContentfulStatusCode,
    code: string,
    message: string,
    options: { cause?: unknown } = {},
  ) {
    super(status, { message, cause: options.cause });
    this.code = code;
  }

  // Hono's default error handler renders getResponse(): keep the same body there (a sub-app
  // without an onError of its own) as the app's onError gives.
  override getResponse(): Response {
    const body: ErrorBody = { error: { code: this.code, message: this.message } };
    return Response.json(body, { status: this.status });
  }
}
