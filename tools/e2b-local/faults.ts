/** A sandbox creation the server refuses on purpose. */
export interface CreateFailure {
  /** 429 (rate limited) or a 5xx. */
  readonly status: number;
  readonly message: string;
  /** Sent as `Retry-After`, which makes the SDK retry a 429 by itself. */
  readonly retryAfterSeconds?: number;
}

/** Faults the server injects at the protocol level; cuts of the connection belong in a TCP proxy. */
export interface E2BLocalFaults {
  /** The next `count` sandbox creations answer `status` instead; calls queue up in order. */
  failCreate(
    count: number,
    status: number,
    options?: { readonly retryAfterSeconds?: number },
  ): void;
  /** Clears every armed fault. */
  reset(): void;
}

export interface E2BLocalFaultInjector {
  readonly faults: E2BLocalFaults;
  /** Decides, and consumes, the failure (if any) for one creation. */
  takeCreateFailure(): CreateFailure | undefined;
}

const MESSAGES: Readonly<Record<number, string>> = {
  429: "Rate limit exceeded: too many concurrent sandboxes",
  500: "Internal server error",
  502: "Bad gateway",
  503: "Service temporarily unavailable",
};

export function createFaultInjector(): E2BLocalFaultInjector {
  const pending: CreateFailure[] = [];
  return {
    faults: {
      failCreate(count, status, options = {}) {
        if (!Number.isSafeInteger(count) || count < 0)
          throw new RangeError(`failCreate: count must be an integer >= 0, got ${count}`);
        if (status !== 429 && !(status >= 500 && status <= 599))
          throw new RangeError(`failCreate: status must be 429 or 5xx, got ${status}`);
        const failure: CreateFailure = {
          status,
          message: MESSAGES[status] ?? `Server error ${status}`,
          ...(options.retryAfterSeconds === undefined
            ? {}
            : { retryAfterSeconds: options.retryAfterSeconds }),
        };
        for (let i = 0; i < count; i++) pending.push(failure);
      },
      reset() {
        pending.length = 0;
      },
    },
    takeCreateFailure: () => pending.shift(),
  };
}
