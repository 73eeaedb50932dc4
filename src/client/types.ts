// The wire types of the public API, as a browser app or a Node service sees them. Type-only
// imports from src/shared: they are erased, so the client carries no runtime dependency.
import type { LogLine } from "../shared/entry.ts";
import type { JobRecord, JobStatus, TerminalStatus } from "../shared/job.ts";
import type { StepEndStatus, StepMark, StepStatus, StepSummary } from "../shared/steps.ts";

/**
 * `LogLine.step` marks a step's start or end (entry format v3; absent on every other line and
 * on logs written before steps were data); `JobRecord.steps` lists the steps with status and
 * duration.
 */
export type {
  JobRecord,
  JobStatus,
  LogLine,
  StepEndStatus,
  StepMark,
  StepStatus,
  StepSummary,
  TerminalStatus,
};

/**
 * One step of a job (src/shared/job-spec.ts's `jobStepSchema`). Written out rather than
 * imported: job-spec.ts pulls in the Web Crypto sealing code, which a browser app's
 * type check need not see. test/runner/client-types.test.ts keeps the two the same.
 */
export interface JobStepInput {
  readonly name: string;
  readonly phase: string;
  readonly command: string;
  readonly timeout_ms?: number;
  readonly background?: boolean;
  readonly ready_text?: string;
  readonly startup_ms?: number;
}

/** What `POST /api/jobs` takes: the input side of `jobSpecSchema`. */
export interface JobSpecInput {
  /** What the build page calls the build; the first step's name when absent. */
  readonly title?: string;
  readonly steps: readonly JobStepInput[];
  readonly env?: Readonly<Record<string, string>>;
  /** Injected like env, and masked in the log wherever they appear. */
  readonly secrets?: Readonly<Record<string, string>>;
  /** A small project to build: path -> UTF-8 content. */
  readonly files?: Readonly<Record<string, string>>;
}

/** `POST /api/jobs` answers 201 with the record and where to find the job's parts. */
export interface CreatedJob extends JobRecord {
  readonly links: Readonly<Record<string, string>>;
}

/** A page of `GET /api/jobs/:id/logs`: lines oldest first, whatever the direction read. */
export interface HistoryPage {
  readonly lines: readonly LogLine[];
  /** Whether more lines lie beyond this page in the direction it was read. */
  readonly has_more: boolean;
  readonly cursors: { readonly before: string | null; readonly after: string | null };
}

export interface StreamTicket {
  readonly ticket: string;
  readonly expires_at: string;
}

/** Every error the API answers: a stable machine code and a sentence for people. */
export interface ErrorBody {
  readonly error: { readonly code: string; readonly message: string };
}

/**
 * The data of each named SSE event the stream sends, by event name. New events (build steps,
 * cancellation) are added here and in `STREAM_EVENT_DECODERS` (live-log.ts); until a client
 * knows one, it arrives as an `UnknownStreamEvent` instead of being dropped or breaking it.
 */
export interface StreamEventMap {
  /** Consecutive lines of one stream entry; `id` is the last line's cursor. */
  log: { readonly lines: readonly LogLine[] };
  /** The job ended; the server closes the stream right after. */
  done: { readonly status: TerminalStatus };
}

export type StreamEventName = keyof StreamEventMap;

/** A named event the server sent: `type` is the SSE event name, `id` its `id:` (null if none). */
export type KnownStreamEvent = {
  [K in StreamEventName]: { readonly type: K; readonly id: string | null } & StreamEventMap[K];
}[StreamEventName];

/** An event this version of the client has no decoder for, passed on as received. */
export interface UnknownStreamEvent {
  readonly type: "unknown";
  readonly event: string;
  readonly id: string | null;
  readonly data: string;
}

/** The server's keepalive comment (`: heartbeat`), seen only with the fetch transport. */
export interface HeartbeatEvent {
  readonly type: "heartbeat";
}

/** The client's own events: a connection opened, or it is about to try again. */
export interface ConnectedEvent {
  readonly type: "connected";
  /** The cursor this connection resumed after (null: the stream's start as the server chose). */
  readonly after: string | null;
  /** 0 for the first connection, then one more per reconnect. */
  readonly attempt: number;
}

export interface ReconnectingEvent {
  readonly type: "reconnecting";
  readonly attempt: number;
  readonly delayMs: number;
  /** Why: `closed` (the server ended the stream before `done`), `network`, `http_<status>`. */
  readonly reason: string;
}

/**
 * A step of the job started or ended. The client derives it from the `step` mark of a line
 * (`LogLine.step`) and yields it right after the `log` event that carried the line: a job's
 * steps as events, with nothing more on the wire. Resumed and history lines carry the same
 * marks, so a page that reads history too sees every step once.
 */
export interface StepEvent {
  readonly type: "step";
  /**
   * The marked line's cursor. Not an `id`: the stream resumes after the last line of the
   * `log` event, which may come after this one.
   */
  readonly cursor: string;
  readonly mark: StepMark;
  readonly line: LogLine;
}

export type LiveLogEvent =
  | KnownStreamEvent
  | StepEvent
  | UnknownStreamEvent
  | HeartbeatEvent
  | ConnectedEvent
  | ReconnectingEvent;
