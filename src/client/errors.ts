import type { ErrorBody } from "./types.ts";

/** An answer of the API other than 2xx, with its stable `code` (see the OpenAPI document). */
export class BuildLogApiError extends Error {
  override readonly name = "BuildLogApiError";
  readonly status: number;
  readonly code: string;
  /** Seconds from a Retry-After header (429, 503), else null. */
  readonly retryAfterSeconds: number | null;
  constructor(
    status: number,
    code: string,
    message: string,
    retryAfterSeconds: number | null = null,
  ) {
    super(message);
    this.status = status;
    this.code = code;
    this.retryAfterSeconds = retryAfterSeconds;
  }
}

/** Reads an error response into a BuildLogApiError, whatever its body holds. */
export async function apiErrorFrom(response: Response): Promise<BuildLogApiError> {
  const retryAfter = response.headers.get("Retry-After");
  const seconds = retryAfter !== null && /^\d+$/.test(retryAfter) ? Number(retryAfter) : null;
  let code = `http_${response.status}`;
  let message = `${response.status} ${response.statusText}`.trim();
  try {
    const body = (await response.json()) as Partial<ErrorBody>;
    if (typeof body.error?.code === "string") code = body.error.code;
    if (typeof body.error?.message === "string") message = body.error.message;
  } catch {
    // Not our JSON (a proxy's page): the status says what there is to say.
  }
  return new BuildLogApiError(response.status, code, message, seconds);
}

/** Statuses worth trying again later: the server or the path to it is busy or restarting. */
export function isRetryableStatus(status: number): boolean {
  return status === 429 || status === 502 || status === 503 || status === 504 || status >= 520;
}
