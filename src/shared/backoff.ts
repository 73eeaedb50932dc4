export interface BackoffOptions {
  /** The delay before the first retry, in the caller's unit (ms, or s for the queue). */
  readonly initial: number;
  /** No delay is longer than this. */
  readonly max: number;
  /**
   * Up to this fraction of the delay is added at random, so that many clients that failed
   * together do not retry together. Default 0.
   */
  readonly jitter?: number;
}

/**
 * Exponential backoff: the delay before retry `attempt` (1 for the first retry) is
 * `initial * 2^(attempt - 1)`, capped at `max`, plus the jitter.
 */
export function exponentialBackoff(options: BackoffOptions): (attempt: number) => number {
  const { initial, max, jitter = 0 } = options;
  if (!(initial > 0 && max >= initial && jitter >= 0))
    throw new RangeError(
      `backoff needs 0 < initial <= max and jitter >= 0, got ${JSON.stringify(options)}`,
    );
  return (attempt) => {
    // The exponent is capped so that a long outage does not overflow to Infinity.
    const base = Math.min(max, initial * 2 ** Math.min(Math.max(0, attempt - 1), 30));
    return jitter === 0 ? base : base + Math.floor(Math.random() * base * jitter);
  };
}
