import { apiErrorFrom } from "./errors.ts";
import {
  credentialsInit,
  type EventSourceConstructor,
  LiveLog,
  type LiveLogHost,
  type LiveLogOptions,
  LOG_START,
  type RequestCredentialsMode,
} from "./live-log.ts";
import type {
  CreatedJob,
  HistoryPage,
  JobRecord,
  JobSpecInput,
  JobStatus,
  StreamTicket,
} from "./types.ts";

export interface BuildLogClientOptions {
  /** The Worker's origin, e.g. "https://logs.example.com" (in a same-origin page: location.origin). */
  readonly baseUrl: string;
  /**
   * The caller's session token (Clerk's `getToken()`), asked for before each request so a token
   * that lives 60 s is never reused stale; `forceRefresh` after a 401. Null: no header (the
   * cookie, with `credentials: "include"`).
   */
  readonly getToken?: (options: {
    forceRefresh: boolean;
  }) => string | null | Promise<string | null>;
  /** "include" sends the `__session` cookie (a same-site app); default: the platform's default. */
  readonly credentials?: RequestCredentialsMode;
  /** Default: the global fetch. */
  readonly fetch?: (input: string, init?: RequestInit) => Promise<Response>;
  /** For `transport: "eventsource"` where there is no global one (Node: the `eventsource` package). */
  readonly EventSource?: EventSourceConstructor;
  /** The clock tickets are judged by; default Date.now. */
  readonly now?: () => number;
}

export interface JobListQuery {
  readonly status?: JobStatus;
  /** The previous page's `next_cursor`. */
  readonly cursor?: string;
  /** 1 to 100; the server's default is 20. */
  readonly limit?: number;
  readonly signal?: AbortSignal;
}

export interface JobListPage {
  readonly jobs: readonly JobRecord[];
  readonly next_cursor: string | null;
}

export interface PageQuery {
  readonly after?: string;
  readonly before?: string;
  /** 1 to 500; the server's default is 100. */
  readonly limit?: number;
  readonly signal?: AbortSignal;
}

export interface PagesOptions {
  /** `forward`: oldest first from `after` (default the log's start); `backward`: newest first from `before` (default the end). */
  readonly direction: "forward" | "backward";
  /** Where to start: a cursor (exclusive). */
  readonly from?: string;
  readonly limit?: number;
  readonly signal?: AbortSignal;
}

export interface BuildLogClient {
  createJob(spec: JobSpecInput, options?: { signal?: AbortSignal }): Promise<CreatedJob>;
  getJob(jobId: string, options?: { signal?: AbortSignal }): Promise<JobRecord>;
  /** One page of the caller's jobs, newest first. */
  listJobs(query?: JobListQuery): Promise<JobListPage>;
  /**
   * Cancels the job: a queued one is `cancelled` at once (the record says so); a running one
   * is still `running` in the answer and its log ends with `done` `cancelled` shortly after.
   * Throws `job_ended` (409) once it has ended.
   */
  cancelJob(jobId: string, options?: { signal?: AbortSignal }): Promise<JobRecord>;
  /** One page of a job's history. */
  logPage(jobId: string, query?: PageQuery): Promise<HistoryPage>;
  /** Every page in one direction until the end (a running job: up to its last line so far). */
  pages(jobId: string, options: PagesOptions): AsyncIterable<HistoryPage>;
  /** A ticket for this job's stream (for an EventSource on another origin). */
  streamTicket(jobId: string, options?: { signal?: AbortSignal }): Promise<StreamTicket>;
  /** The job's live log, resumed exactly across reconnects: see LiveLog. */
  openLog(jobId: string, options?: LiveLogOptions): LiveLog;
}

/** A client for the public API; runs in browsers, Node (>= 18) and Workers, with no dependency. */
export function createBuildLogClient(options: BuildLogClientOptions): BuildLogClient {
  if (!URL.canParse(options.baseUrl)) {
    throw new Error(
      `createBuildLogClient: baseUrl must be an absolute URL: ${JSON.stringify(options.baseUrl)}`,
    );
  }
  const baseUrl = options.baseUrl;
  // Browsers refuse a fetch called on another `this` ("Illegal invocation"): wrap, never store the bare function.
  const fetchImpl =
    options.fetch ?? ((input: string, init?: RequestInit) => globalThis.fetch(input, init));
  const now = options.now ?? Date.now;

  async function authHeaders(forceRefresh: boolean): Promise<Record<string, string>> {
    const token = (await options.getToken?.({ forceRefresh })) ?? null;
    return token === null || token === "" ? {} : { Authorization: `Bearer ${token}` };
  }

  async function request<T>(
    path: string,
    init: RequestInit & { signal?: AbortSignal | undefined } = {},
  ): Promise<T> {
    const send = async (forceRefresh: boolean): Promise<Response> =>
      fetchImpl(new URL(path, baseUrl).href, {
        ...init,
        headers: {
          Accept: "application/json",
          ...(init.headers as Record<string, string> | undefined),
          ...(await authHeaders(forceRefresh)),
        },
        ...credentialsInit(options.credentials),
      });
    let response = await send(false);
    // A session token can expire between getToken() and the request: one more try, with a new one.
    if (response.status === 401 && options.getToken !== undefined) {
      await response.body?.cancel();
      response = await send(true);
    }
    if (!response.ok) throw await apiErrorFrom(response);
    return (await response.json()) as T;
  }

  const jobPath = (jobId: string): string => `/api/jobs/${encodeURIComponent(jobId)}`;

  const client: BuildLogClient = {
    createJob: (spec, { signal } = {}) =>
      request<CreatedJob>("/api/jobs", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify(spec),
        signal,
      }),
    getJob: (jobId, { signal } = {}) => request<JobRecord>(jobPath(jobId), { signal }),
    listJobs(query = {}) {
      const params = new URLSearchParams();
      if (query.status !== undefined) params.set("status", query.status);
      if (query.cursor !== undefined) params.set("cursor", query.cursor);
      if (query.limit !== undefined) params.set("limit", String(query.limit));
      const search = params.size > 0 ? `?${params}` : "";
      return request<JobListPage>(`/api/jobs${search}`, { signal: query.signal });
    },
    cancelJob: (jobId, { signal } = {}) =>
      request<JobRecord>(`${jobPath(jobId)}/cancel`, {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: "{}",
        signal,
      }),
    logPage(jobId, query = {}) {
      const params = new URLSearchParams();
      if (query.after !== undefined) params.set("after", query.after);
      if (query.before !== undefined) params.set("before", query.before);
      if (query.limit !== undefined) params.set("limit", String(query.limit));
      const search = params.size > 0 ? `?${params}` : "";
      return request<HistoryPage>(`${jobPath(jobId)}/logs${search}`, { signal: query.signal });
    },
    async *pages(jobId, { direction, from, limit, signal }) {
      let cursor = from ?? (direction === "forward" ? LOG_START : undefined);
      for (;;) {
        const page = await client.logPage(jobId, {
          ...(cursor === undefined
            ? {}
            : direction === "forward"
              ? { after: cursor }
              : { before: cursor }),
          ...(limit === undefined ? {} : { limit }),
          ...(signal === undefined ? {} : { signal }),
        });
        yield page;
        const next = direction === "forward" ? page.cursors.after : page.cursors.before;
        // A page that did not move (no real line) would ask for itself again.
        if (!page.has_more || next === null || next === cursor) return;
        cursor = next;
      }
    },
    streamTicket: (jobId, { signal } = {}) =>
      request<StreamTicket>(`${jobPath(jobId)}/logs/ticket`, { method: "POST", signal }),
    openLog(jobId, logOptions = {}) {
      const host: LiveLogHost = {
        baseUrl,
        fetch: fetchImpl,
        authHeaders,
        credentials: options.credentials,
        streamTicket: (id, signal) => client.streamTicket(id, { signal }),
        EventSource: options.EventSource,
        now,
      };
      return new LiveLog(host, jobId, logOptions);
    },
  };
  return client;
}
