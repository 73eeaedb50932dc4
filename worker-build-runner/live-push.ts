import { exponentialBackoff } from "../src/shared/backoff.ts";
import type { LivePush, LivePushAnswer } from "../src/shared/live-push.ts";
import {
  createBaseDelayEstimate,
  createRoundTripEstimate,
  liveFlushTiming,
} from "./flush-timing.ts";
import type { FlushTiming, Logger, WrittenEntries } from "./redis-writer.ts";

// A Worker that is down is not hammered once per batch: 200 ms after the first failure,
// doubling, at most 10 s.
const pushBackoff = exponentialBackoff({ initial: 200, max: 10_000 });

/** Sends one push to the job's Durable Object (through the Worker's internal route). */
export interface LivePushTransport {
  push(jobId: string, push: LivePush): Promise<LivePushAnswer>;
}

export interface LivePushOptions {
  readonly jobId: string;
  readonly transport: LivePushTransport;
  /** With viewers: a push with no entries after this long without one, so a lost push is noticed. */
  readonly keepaliveMs?: number;
  /** Without viewers: how often to ask again whether there are some. */
  readonly probeMs?: number;
  /** Entries waiting for the push in flight beyond this many bytes are dropped (the object reads the gap). */
  readonly maxQueuedBytes?: number;
  readonly logger?: Logger;
  readonly now?: () => number;
}

export interface LivePushStats {
  /** Pushes sent, keepalives included. */
  pushes: number;
  keepalives: number;
  failed: number;
  /** Batches written while nobody watched: not pushed. */
  skipped: number;
  /** Entries dropped from the queue (too many bytes waiting, or a push failed). */
  dropped: number;
}

/**
 * The runner's half of the live path: after each successful XADD the same entries go to the
 * job's Durable Object, asynchronously and never in the build's way. One push is in flight at a
 * time; batches written meanwhile are coalesced into the next. A failed push is not retried:
 * the next push (or keepalive) names the entry before it, the object sees the gap and reads it
 * from Redis. Pushes go only while the object's last answer counted viewers; otherwise a probe
 * asks again now and then.
 */
export interface LivePusher {
  /** Give it every WrittenEntries the writer reports (its `onWritten`). */
  written(batch: WrittenEntries): void;
  /** The writer's batching while this pusher carries the latency (liveFlushTiming). */
  readonly flushTiming: FlushTiming;
  /** Whether the last answer counted viewers (null: no answer yet). */
  readonly watched: boolean | null;
  /** Stops keepalives and probes; resolves when the push in flight is answered. */
  close(): Promise<void>;
  readonly stats: Readonly<LivePushStats>;
}

/** Rough bytes of queued entries: their field values dominate. */
function entryBytes(entry: LivePush["entries"][number]): number {
  let bytes = entry.id.length;
  for (const value of Object.values(entry.fields)) bytes += value.length;
  return bytes;
}

export function createLivePusher(options: LivePushOptions): LivePusher {
  const keepaliveMs = options.keepaliveMs ?? 2_000;
  const probeMs = options.probeMs ?? 2_000;
  const maxQueuedBytes = options.maxQueuedBytes ?? 1024 * 1024;
  const logger = options.logger ?? console;
  const now = options.now ?? Date.now;
  const writer = crypto.randomUUID();
  const stats: LivePushStats = { pushes: 0, keepalives: 0, failed: 0, skipped: 0, dropped: 0 };
  const request = createRoundTripEstimate(20);
  // The push path's base delay, not its smoothed round trip: see createBaseDelayEstimate.
  const delivery = createBaseDelayEstimate(10, { now });

  let watched: boolean | null = null;
  let paced = false;
  let queue: LivePush["entries"][number][] = [];
  let queuedBytes = 0;
  let queuePrevious: string | null = null;
  // The stream's top as this writer knows it: what a keepalive names.
  let top: string | null = null;
  let inflight: Promise<void> | null = null;
  let lastSentAt = now();
  let closed = false;
  let failures = 0;
  let retryAt = 0;

  const send = (push: LivePush): void => {
    stats.pushes += 1;
    if (push.entries.length === 0) stats.keepalives += 1;
    lastSentAt = now();
    const started = now();
    inflight = options.transport
      .push(options.jobId, push)
      .then((answer) => {
        delivery.observe(now() - started);
        watched = answer.viewers > 0;
        paced = answer.paced === true;
        failures = 0;
      })
      .catch((error: unknown) => {
        stats.failed += 1;
        failures += 1;
        watched = null;
        // A Worker that is down is not hammered once per batch: wait, and drop what waits.
        retryAt = now() + pushBackoff(failures);
        if (failures === 1 || Number.isInteger(Math.log2(failures)))
          logger.warn(
            `build-log-stream: pushing lines of job ${options.jobId} to the Worker failed (${failures} in a row; viewers read them from Redis): ${error instanceof Error ? error.message : String(error)}`,
          );
      })
      .finally(() => {
        inflight = null;
        if (queue.length > 0) flushQueue();
      });
  };

  const flushQueue = (): void => {
    if (inflight !== null || queue.length === 0) return;
    if (now() < retryAt) {
      stats.dropped += queue.length;
      queue = [];
      queuedBytes = 0;
      return;
    }
    const push: LivePush = { writer, previous: queuePrevious, entries: queue };
    queue = [];
    queuedBytes = 0;
    send(push);
  };

  const tick = setInterval(
    () => {
      if (closed || inflight !== null || top === null || now() < retryAt) return;
      const quietFor = now() - lastSentAt;
      if (quietFor >= (watched === false ? probeMs : keepaliveMs))
        send({ writer, previous: top, entries: [] });
    },
    Math.max(50, Math.min(keepaliveMs, probeMs) / 4),
  );

  const flushTiming = liveFlushTiming({
    watched: () => watched !== false,
    eager: () => paced,
    request,
    delivery,
  });

  return {
    written(batch) {
      request.observe(batch.requestMs);
      const last = batch.entries.at(-1)?.id;
      if (last === undefined) return;
      const contiguous = queue.length > 0 && queue.at(-1)?.id === batch.previousId;
      top = last;
      if (closed) return;
      if (watched === false) {
        stats.skipped += 1;
        return;
      }
      if (!contiguous) {
        // A queue that does not run on into this batch would make a false claim: drop it.
        stats.dropped += queue.length;
        queue = [];
        queuedBytes = 0;
        queuePrevious = batch.previousId;
      }
      for (const entry of batch.entries) {
        queue.push({ id: entry.id, fields: { ...entry.fields } });
        queuedBytes += entryBytes(entry);
      }
      if (queuedBytes > maxQueuedBytes && inflight !== null) {
        stats.dropped += queue.length;
        queue = [];
        queuedBytes = 0;
        return;
      }
      flushQueue();
    },
    flushTiming,
    get watched() {
      return watched;
    },
    async close() {
      closed = true;
      clearInterval(tick);
      // The last batch (the end) may still be waiting behind the push in flight.
      while (inflight !== null) await inflight;
    },
    stats,
  };
}
