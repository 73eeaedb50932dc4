// bench/fanout.ts's viewers on a thread of their own: a thousand SSE readers parse ~10,000 events
// a second, and on the runner's event loop (the writer, its pusher, the Upstash bridge) they
// delayed every XADD and push by that loop's lag, which production, where viewers are browsers
// elsewhere, does not have. Both threads stamp lines with nowMs() (wall clock, sub-millisecond).
import { isMainThread, parentPort, Worker, workerData } from "node:worker_threads";
import { createDeliveryLog, type DeliverySummary } from "./fanout-lines.ts";
import { createViewerPool, type ViewerPoolOptions } from "./fanout-viewers.ts";

export interface ViewerThreadOptions extends Omit<ViewerPoolOptions, "log"> {
  /** The most lines any viewer will be sent. */
  readonly capacityPerReader: number;
}

export interface ViewerStatus {
  /** Viewers that received `done`. */
  readonly done: number;
  readonly drops: number;
  readonly reconnects: number;
  readonly logEvents: number;
  readonly badFrames: number;
  readonly errors: readonly string[];
  /** Every viewer has lines 0 to `expectedPerReader` - 1 (the argument of status()). */
  readonly complete: boolean;
}

/** The viewer pool of fanout-viewers.ts, driven from the main thread. */
export interface ViewerThread {
  open(concurrency: number, timeoutMs: number): Promise<number>;
  status(expectedPerReader: number): Promise<ViewerStatus>;
  summary(expectedPerReader: number, warmFrom: number): Promise<DeliverySummary>;
  /** Closes every stream and ends the thread. */
  close(): Promise<void>;
}

type Request =
  | { readonly op: "open"; readonly concurrency: number; readonly timeoutMs: number }
  | { readonly op: "status"; readonly expected: number }
  | { readonly op: "summary"; readonly expected: number; readonly warmFrom: number }
  | { readonly op: "close" };

interface Reply {
  readonly id: number;
  readonly result?: unknown;
  readonly error?: string;
}

export function startViewerThread(options: ViewerThreadOptions): ViewerThread {
  const worker = new Worker(new URL(import.meta.url), { workerData: options });
  let nextId = 0;
  const waiting = new Map<
    number,
    { resolve: (value: unknown) => void; reject: (e: Error) => void }
  >();
  worker.on("message", (reply: Reply) => {
    const call = waiting.get(reply.id);
    waiting.delete(reply.id);
    if (reply.error !== undefined) call?.reject(new Error(reply.error));
    else call?.resolve(reply.result);
  });
  worker.on("error", (error) => {
    for (const call of waiting.values()) call.reject(error);
    waiting.clear();
  });
  const ask = <T>(request: Request): Promise<T> =>
    new Promise<T>((resolve, reject) => {
      const id = nextId++;
      waiting.set(id, { resolve: (value) => resolve(value as T), reject });
      worker.postMessage({ id, request });
    });
  return {
    open: (concurrency, timeoutMs) => ask<number>({ op: "open", concurrency, timeoutMs }),
    status: (expected) => ask<ViewerStatus>({ op: "status", expected }),
    summary: (expected, warmFrom) => ask<DeliverySummary>({ op: "summary", expected, warmFrom }),
    async close() {
      await ask<void>({ op: "close" }).catch(() => undefined);
      await worker.terminate();
    },
  };
}

if (!isMainThread && parentPort !== null) {
  const port = parentPort;
  const options = workerData as ViewerThreadOptions;
  const log = createDeliveryLog(options.count, options.capacityPerReader);
  const pool = createViewerPool({ ...options, log });
  const answer = async (request: Request): Promise<unknown> => {
    switch (request.op) {
      case "open":
        return pool.open(request.concurrency, request.timeoutMs);
      case "status":
        return {
          done: pool.doneCount(),
          drops: pool.drops(),
          reconnects: pool.reconnects(),
          logEvents: pool.logEvents(),
          badFrames: pool.badFrames(),
          errors: pool.errors(),
          complete: log.allComplete(request.expected),
        } satisfies ViewerStatus;
      case "summary":
        return log.summary(request.expected, request.warmFrom);
      case "close":
        pool.close();
        return undefined;
    }
  };
  port.on("message", ({ id, request }: { id: number; request: Request }) => {
    answer(request).then(
      (result) => port.postMessage({ id, result }),
      (error: unknown) => port.postMessage({ id, error: String(error) }),
    );
  });
}
