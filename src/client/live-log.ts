import { apiErrorFrom, BuildLogApiError, isRetryableStatus } from "./errors.ts";
import { SseParser } from "./sse-parser.ts";
import type {
  KnownStreamEvent,
  LiveLogEvent,
  LogLine,
  StreamEventMap,
  StreamEventName,
  StreamTicket,
  TerminalStatus,
} from "./types.ts";

/** The cursor before a log's first line: `after` it is the whole log. */
export const LOG_START = "0-0:0";

/** RequestInit's `credentials` (Workers' RequestInit type leaves it out). */
export type RequestCredentialsMode = "omit" | "same-origin" | "include";

/** The parts of an EventSource this client uses (the browser's, or the `eventsource` package's). */
export interface EventSourceLike {
  readonly readyState: number;
  close(): void;
  addEventListener(
    type: string,
    listener: (event: { data?: unknown; lastEventId?: string }) => void,
  ): void;
}
export type EventSourceConstructor = new (
  url: string,
  init?: { withCredentials?: boolean },
) => EventSourceLike;

export interface LiveLogOptions {
  /**
   * Resume after this cursor (a line's cursor, an event's `id`); default LOG_START, the whole
   * log. null: only what the job writes from now on.
   */
  readonly after?: string | null;
  /** Ends the stream (the iteration finishes without an error) and any request under way. */
  readonly signal?: AbortSignal;
  /**
   * How the stream proves who is watching. `session` (default with fetch): the client's
   * `getToken()` as a Bearer header, or the cookie with `credentials: "include"`. `ticket`: a
   * short-lived stream ticket in the URL (POST .../logs/ticket), which EventSource needs on
   * another origin since it cannot send headers.
   */
  readonly auth?: "session" | "ticket";
  /**
   * `fetch` (default): reads the event stream from fetch's body; works in browsers, Node and
   * Workers, sends headers and sees heartbeats. `eventsource`: the platform's EventSource
   * (always with a ticket or the cookie); it cannot report heartbeats or events it was not told of.
   */
  readonly transport?: "fetch" | "eventsource";
  /** Event names to listen for with the EventSource transport beyond `log` and `done`. */
  readonly extraEvents?: readonly string[];
  readonly reconnect?: {
    /** The first delay after a drop; default the server's `retry:` (2 s), else 1 s. */
    readonly delayMs?: number;
    /** The longest delay between failed tries (doubling from delayMs); default 30 s. */
    readonly maxDelayMs?: number;
    /** Failed tries in a row before the iteration throws; default unlimited. */
    readonly maxAttempts?: number;
  };
  /** A ticket is renewed when fewer than this many ms are left of it at a connect; default 30 s. */
  readonly ticketMarginMs?: number;
}

/** What a live log needs of the client: requests, the token, the ticket, the clock. */
export interface LiveLogHost {
  readonly baseUrl: string;
  fetch(input: string, init?: RequestInit): Promise<Response>;
  authHeaders(forceRefresh: boolean): Promise<Record<string, string>>;
  readonly credentials: RequestCredentialsMode | undefined;
  streamTicket(jobId: string, signal: AbortSignal): Promise<StreamTicket>;
  readonly EventSource: EventSourceConstructor | undefined;
  now(): number;
}

type Decoder<K extends StreamEventName> = (data: unknown) => StreamEventMap[K] | null;

// Written out, not imported: src/shared/job.ts loads zod, and the client is imported by pages
// as plain browser modules. A Record over the union fails to compile when a status is missing.
const TERMINAL_STATUS_SET: Record<TerminalStatus, true> = {
  ready: true,
  failed: true,
  cancelled: true,
};
const TERMINAL: ReadonlySet<string> = new Set(Object.keys(TERMINAL_STATUS_SET));

/** How each known event's data is read; an event that fails its decoder arrives as unknown. */
export const STREAM_EVENT_DECODERS: { readonly [K in StreamEventName]: Decoder<K> } = {
  log: (data) =>
    typeof data === "object" && data !== null && Array.isArray((data as { lines?: unknown }).lines)
      ? { lines: (data as { lines: LogLine[] }).lines }
      : null,
  done: (data) => {
    const status =
      typeof data === "object" && data !== null ? (data as { status?: unknown }).status : null;
    return typeof status === "string" && TERMINAL.has(status)
      ? { status: status as TerminalStatus }
      : null;
  },
};

/** `credentials` as a RequestInit part, typed loosely since Workers' RequestInit lacks it. */
export function credentialsInit(mode: RequestCredentialsMode | undefined): RequestInit {
  return (mode === undefined ? {} : { credentials: mode }) as RequestInit;
}

/** A named event as received, then a `step` event for each line of it that marks a step. */
function decodeEvents(event: string, id: string | null, data: string): LiveLogEvent[] {
  const decoded = decodeEvent(event, id, data);
  if (decoded.type !== "log") return [decoded];
  const steps: LiveLogEvent[] = [];
  for (const line of decoded.lines)
    if (line.step !== undefined)
      steps.push({ type: "step", cursor: line.cursor, mark: line.step, line });
  return [decoded, ...steps];
}

function decodeEvent(event: string, id: string | null, data: string): LiveLogEvent {
  if (Object.hasOwn(STREAM_EVENT_DECODERS, event)) {
    const name = event as StreamEventName;
    let parsed: unknown;
    try {
      parsed = JSON.parse(data);
    } catch {
      parsed = undefined;
    }
    const decoded = STREAM_EVENT_DECODERS[name](parsed);
    if (decoded !== null) return { type: name, id, ...decoded } as KnownStreamEvent;
  }
  return { type: "unknown", event, id, data };
}

/** Thrown inside the loop to say "connect again"; never leaves it. */
class Reconnect {
  readonly reason: string;
  /** Whether the connection had opened: then the backoff starts over. */
  readonly opened: boolean;
  readonly immediately: boolean;
  constructor(reason: string, opened: boolean, immediately = false) {
    this.reason = reason;
    this.opened = opened;
    this.immediately = immediately;
  }
}

/**
 * A job's live log: iterate it (`for await (const event of log)`) to get its events in order,
 * each line exactly once across any number of reconnects (each reconnect resumes after the last
 * event id). The iteration ends after `done`, or quietly on abort/close; it throws a
 * BuildLogApiError for an answer that retrying cannot change (404, 400, a refused session).
 */
export class LiveLog implements AsyncIterable<LiveLogEvent> {
  #lastEventId: string | null;
  #status: "idle" | "connecting" | "open" | "reconnecting" | "done" | "closed" = "idle";
  #ticket: { value: string; expiresAt: number } | null = null;
  #retryMs: number | null = null;
  #started = false;
  readonly #abort = new AbortController();

  private readonly host: LiveLogHost;
  readonly jobId: string;
  private readonly options: LiveLogOptions;

  constructor(host: LiveLogHost, jobId: string, options: LiveLogOptions = {}) {
    this.host = host;
    this.jobId = jobId;
    this.options = options;
    this.#lastEventId = options.after === undefined ? LOG_START : options.after;
    const signal = options.signal;
    if (signal?.aborted) this.#abort.abort();
    else signal?.addEventListener("abort", () => this.close(), { once: true });
  }

  /** The cursor the next reconnect resumes after: the last event id seen. */
  get lastEventId(): string | null {
    return this.#lastEventId;
  }

  get status(): string {
    return this.#status;
  }

  /** Ends the stream; an iteration under way finishes without an error. */
  close(): void {
    if (this.#status !== "done") this.#status = "closed";
    this.#abort.abort();
  }

  /** Collects every line until `done`: a convenience for scripts and tests. */
  async collect(): Promise<{ lines: LogLine[]; status: TerminalStatus | null }> {
    const lines: LogLine[] = [];
    let status: TerminalStatus | null = null;
    for await (const event of this) {
      if (event.type === "log") lines.push(...event.lines);
      else if (event.type === "done") status = event.status;
    }
    return { lines, status };
  }

  [Symbol.asyncIterator](): AsyncIterator<LiveLogEvent> {
    if (this.#started)
      throw new Error("a LiveLog can be iterated once; open another for a second reader");
    this.#started = true;
    return this.#run();
  }

  async *#run(): AsyncGenerator<LiveLogEvent, void, undefined> {
    const reconnect = this.options.reconnect ?? {};
    const maxDelay = reconnect.maxDelayMs ?? 30_000;
    const maxAttempts = reconnect.maxAttempts ?? Number.POSITIVE_INFINITY;
    let attempt = 0;
    let failures = 0;
    let authRetried = false;
    try {
      while (!this.#abort.signal.aborted) {
        this.#status = attempt === 0 ? "connecting" : "reconnecting";
        let outcome: Reconnect;
        try {
          const connection =
            this.options.transport === "eventsource"
              ? this.#viaEventSource(attempt)
              : this.#viaFetch(attempt, authRetried);
          for await (const event of connection) {
            if (event.type === "connected") {
              this.#status = "open";
              failures = 0;
              authRetried = false;
            }
            yield event;
            if (event.type === "done") {
              this.#status = "done";
              return;
            }
          }
          outcome = new Reconnect("closed", true);
        } catch (error) {
          if (this.#abort.signal.aborted) return;
          if (error instanceof Reconnect) outcome = error;
          else if (error instanceof BuildLogApiError) {
            if (error.status === 401 && !authRetried) {
              // A refused ticket or token: get a new one and try once more at once.
              authRetried = true;
              this.#ticket = null;
              outcome = new Reconnect("http_401", false, true);
            } else if (isRetryableStatus(error.status))
              outcome = new Reconnect(`http_${error.status}`, false);
            else throw error;
          } else outcome = new Reconnect("network", false);
        }
        if (this.#abort.signal.aborted) return;
        attempt += 1;
        if (outcome.opened) failures = 0;
        else failures += 1;
        if (failures > maxAttempts)
          throw new Error(
            `the stream of ${this.jobId} failed ${failures} times in a row (${outcome.reason})`,
          );
        const base = reconnect.delayMs ?? this.#retryMs ?? 1_000;
        const delayMs = outcome.immediately
          ? 0
          : Math.min(maxDelay, base * 2 ** Math.max(0, failures - 1));
        yield { type: "reconnecting", attempt, delayMs, reason: outcome.reason };
        await this.#sleep(delayMs);
      }
    } finally {
      if (this.#status !== "done") this.#status = "closed";
      this.#abort.abort();
    }
  }

  #sleep(ms: number): Promise<void> {
    if (ms <= 0) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      function done(): void {
        clearTimeout(timer);
        resolve();
      }
      this.#abort.signal.addEventListener("abort", done, { once: true });
    });
  }

  /** A ticket valid for at least the margin: a ticket is only checked when a connection opens. */
  async #currentTicket(): Promise<string> {
    const margin = this.options.ticketMarginMs ?? 30_000;
    if (this.#ticket === null || this.#ticket.expiresAt - this.host.now() < margin) {
      const issued = await this.host.streamTicket(this.jobId, this.#abort.signal);
      this.#ticket = { value: issued.ticket, expiresAt: Date.parse(issued.expires_at) };
    }
    return this.#ticket.value;
  }

  async #streamUrl(useTicket: boolean): Promise<string> {
    const url = new URL(
      `/api/jobs/${encodeURIComponent(this.jobId)}/logs/stream`,
      this.host.baseUrl,
    );
    // ?after= rather than Last-Event-ID: a custom header would make a cross-origin request
    // preflighted, and the query works for EventSource too.
    if (this.#lastEventId !== null) url.searchParams.set("after", this.#lastEventId);
    if (useTicket) url.searchParams.set("ticket", await this.#currentTicket());
    return url.href;
  }

  async *#viaFetch(
    attempt: number,
    forceToken: boolean,
  ): AsyncGenerator<LiveLogEvent, void, undefined> {
    const useTicket = this.options.auth === "ticket";
    const url = await this.#streamUrl(useTicket);
    const headers: Record<string, string> = {
      Accept: "text/event-stream",
      ...(useTicket ? {} : await this.host.authHeaders(forceToken)),
    };
    const response = await this.host.fetch(url, {
      headers,
      signal: this.#abort.signal,
      ...credentialsInit(this.host.credentials),
    });
    // A 401 (a ticket past its time, a session token Clerk has rotated) is renewed once by
    // the loop; anything else that is not retryable ends the iteration.
    if (!response.ok) throw await apiErrorFrom(response);
    if (response.body === null) throw new Reconnect("closed", false);
    yield { type: "connected", after: this.#lastEventId, attempt };
    const pending: LiveLogEvent[] = [];
    const parser = new SseParser(
      {
        onEvent: (event) => {
          const id = event.hasId ? event.lastEventId : null;
          pending.push(...decodeEvents(event.event, id, event.data));
        },
        onComment: (text) => {
          if (text === "heartbeat") pending.push({ type: "heartbeat" });
        },
        onRetry: (ms) => {
          this.#retryMs = ms;
        },
      },
      this.#lastEventId ?? "",
    );
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) return;
        parser.feed(value);
        while (pending.length > 0) {
          const event = pending.shift();
          if (event === undefined) break;
          if ("id" in event && event.id !== null) this.#lastEventId = event.id;
          yield event;
        }
      }
    } finally {
      await reader.cancel().catch(() => undefined);
    }
  }

  async *#viaEventSource(attempt: number): AsyncGenerator<LiveLogEvent, void, undefined> {
    const EventSourceImpl =
      this.host.EventSource ?? (globalThis as { EventSource?: EventSourceConstructor }).EventSource;
    if (EventSourceImpl === undefined)
      throw new Error('no EventSource here: pass one to the client, or use transport: "fetch"');
    const useTicket = this.options.auth !== "session";
    const source = new EventSourceImpl(await this.#streamUrl(useTicket), {
      withCredentials: this.host.credentials === "include",
    });
    // EventSource pushes; the generator pulls: a small queue between them.
    const queue: (LiveLogEvent | Reconnect)[] = [];
    let wake: (() => void) | null = null;
    const push = (item: LiveLogEvent | Reconnect): void => {
      queue.push(item);
      wake?.();
      wake = null;
    };
    let opened = false;
    source.addEventListener("open", () => {
      opened = true;
      push({ type: "connected", after: this.#lastEventId, attempt });
    });
    // Our loop reconnects, not EventSource's: it would reuse a URL whose ticket may have expired.
    source.addEventListener("error", () => {
      source.close();
      // Before any open, the ticket may be what was refused; a new one costs one request.
      if (!opened) this.#ticket = null;
      push(new Reconnect(opened ? "closed" : "network", opened));
    });
    for (const name of ["log", "done", ...(this.options.extraEvents ?? [])]) {
      source.addEventListener(name, (event) => {
        const id =
          typeof event.lastEventId === "string" && event.lastEventId !== ""
            ? event.lastEventId
            : null;
        for (const decoded of decodeEvents(
          name,
          id,
          typeof event.data === "string" ? event.data : "",
        ))
          push(decoded);
      });
    }
    const onAbort = (): void => {
      source.close();
      push(new Reconnect("closed", opened));
    };
    this.#abort.signal.addEventListener("abort", onAbort, { once: true });
    try {
      for (;;) {
        const item = queue.shift();
        if (item === undefined) {
          await new Promise<void>((resolve) => {
            wake = resolve;
          });
          continue;
        }
        if (item instanceof Reconnect) throw item;
        if ("id" in item && item.id !== null) this.#lastEventId = item.id;
        yield item;
      }
    } finally {
      this.#abort.signal.removeEventListener("abort", onAbort);
      source.close();
    }
  }
}
