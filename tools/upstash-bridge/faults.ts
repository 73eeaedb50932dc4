/**
 * How an injected failure shows itself to the client:
 * - "status": HTTP 503, nothing executed;
 * - "reset": the connection is reset, nothing executed (the client sees a network error);
 * - "after-exec": the commands ARE executed, then the connection is reset (the client thinks
 *   the request failed although it succeeded: the case that makes retries write twice).
 */
export type FailureMode = (typeof FAILURE_MODES)[number];

export const FAILURE_MODES = ["status", "reset", "after-exec"] as const;

/** Faults the bridge injects into its API requests (never into the `/_bridge/` admin requests). */
export interface BridgeFaults {
  /** Added before answering each request. Setting a negative or non-finite value throws. */
  latencyMs: number;
  /** The next `count` requests fail in `mode` (default "status"). Calls queue up in order. */
  failNext(count: number, mode?: FailureMode): void;
  /** Every request fails (connection reset, nothing executed) for `ms` milliseconds from now. */
  outage(ms: number): void;
  /** Clears all faults and the latency. */
  reset(): void;
}

/** What is armed right now; the admin endpoint `GET /_bridge/faults` returns it. */
export interface FaultState {
  readonly latencyMs: number;
  readonly pendingFailures: readonly { readonly mode: FailureMode; readonly count: number }[];
  readonly outageRemainingMs: number;
}

/** What the bridge has injected since the last stats reset, as it observed it. */
export interface FaultStats {
  /** Requests failed on purpose (failNext or an outage). */
  readonly failures: number;
  /** Requests that waited for `latencyMs`. */
  readonly delayedRequests: number;
  /** Total delay injected, measured around the waits (each wait is at least `latencyMs`). */
  readonly delayMs: number;
}

export interface FaultInjector {
  readonly faults: BridgeFaults;
  /** Decides, and consumes, the failure (if any) for one incoming request. */
  takeFailure(): FailureMode | undefined;
  /** Waits for the configured latency, if any. */
  delay(): Promise<void>;
  state(): FaultState;
  stats(): FaultStats;
  resetStats(): void;
}

export function isFailureMode(value: unknown): value is FailureMode {
  return FAILURE_MODES.some((mode) => mode === value);
}

export function createFaultInjector(): FaultInjector {
  let latencyMs = 0;
  let outageUntil = 0;
  const pending: { mode: FailureMode; count: number }[] = [];
  let failures = 0;
  let delayedRequests = 0;
  let delayMs = 0;

  const faults: BridgeFaults = {
    get latencyMs() {
      return latencyMs;
    },
    set latencyMs(value: number) {
      if (!Number.isFinite(value) || value < 0) {
        throw new RangeError(`latencyMs must be a finite number >= 0, got ${value}`);
      }
      latencyMs = value;
    },
    failNext(count, mode = "status") {
      if (!Number.isSafeInteger(count) || count < 0) {
        throw new RangeError(`failNext: count must be an integer >= 0, got ${count}`);
      }
      if (!isFailureMode(mode)) {
        throw new RangeError(
          `failNext: mode must be one of ${FAILURE_MODES.join(", ")}, got ${String(mode)}`,
        );
      }
      if (count === 0) return;
      const last = pending.at(-1);
      if (last?.mode === mode) last.count += count;
      else pending.push({ mode, count });
    },
    outage(ms) {
      if (!Number.isFinite(ms) || ms < 0) {
        throw new RangeError(`outage: ms must be a finite number >= 0, got ${ms}`);
      }
      outageUntil = performance.now() + ms;
    },
    reset() {
      latencyMs = 0;
      outageUntil = 0;
      pending.length = 0;
    },
  };

  return {
    faults,
    takeFailure() {
      if (performance.now() < outageUntil) {
        failures++;
        return "reset";
      }
      const next = pending[0];
      if (next === undefined) return undefined;
      next.count--;
      if (next.count === 0) pending.shift();
      failures++;
      return next.mode;
    },
    async delay() {
      const target = latencyMs;
      if (target <= 0) return;
      const start = performance.now();
      let elapsed = 0;
      // Timers may fire a fraction of a millisecond early; wait again until the full delay passed.
      while (elapsed < target) {
        await new Promise((resolve) => setTimeout(resolve, Math.ceil(target - elapsed)));
        elapsed = performance.now() - start;
      }
      delayedRequests++;
      delayMs += elapsed;
    },
    state() {
      return {
        latencyMs,
        pendingFailures: pending.map(({ mode, count }) => ({ mode, count })),
        outageRemainingMs: Math.max(0, Math.ceil(outageUntil - performance.now())),
      };
    },
    stats() {
      return { failures, delayedRequests, delayMs };
    },
    resetStats() {
      failures = 0;
      delayedRequests = 0;
      delayMs = 0;
    },
  };
}
