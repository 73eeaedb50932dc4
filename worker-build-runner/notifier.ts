import {
  type LivePush,
  type LivePushAnswer,
  MAX_PUSH_MESSAGE_BYTES,
} from "../src/shared/live-push.ts";
import { runnerAuthorization } from "../src/shared/runner-token.ts";
import type { ArchiveProgress, WorkerNotifier } from "./run-job.ts";

// A push that takes longer than this is given up: the object reads what it missed from Redis.
const PUSH_TIMEOUT_MS = 10_000;
const ARCHIVE_TIMEOUT_MS = 60_000;
// A push over the job's socket that is not answered by then goes by POST, and the socket is
// closed: it may be half-open.
const SOCKET_ANSWER_TIMEOUT_MS = 2_000;
// After a socket failed (or could not open), pushes go by POST this long before another is tried.
const SOCKET_RETRY_MS = 5_000;

/** What a push answer says, checked: `what` names where it came from. */
function answerOf(answer: unknown, what: string): LivePushAnswer {
  const viewers =
    typeof answer === "object" && answer !== null && "viewers" in answer
      ? answer.viewers
      : undefined;
  if (typeof viewers !== "number") throw new Error(`${what} answered without a viewer count`);
  // An older Worker does not say; it does not pace.
  const paced =
    typeof answer === "object" && answer !== null && "paced" in answer && answer.paced === true;
  return { viewers, paced };
}

interface Waiting {
  readonly resolve: (answer: unknown) => void;
  readonly reject: (error: Error) => void;
  readonly timer: ReturnType<typeof setTimeout>;
}

/**
 * The runner's WebSocket to one job's object (GET /internal/jobs/:id/push-socket): a push is a
 * message, answered by a message with its `seq`. A POST costs the Worker a request of its own
 * and an RPC; a message goes straight to the object (in local workerd a push cost 0.3-0.4 ms
 * of CPU this way against 1.9-3.0 ms by POST, so at 1,000 viewers and 20 pushes a second the
 * object's share of the machine is what pays for the fan-out).
 */
class PushSocket {
  private readonly socket: WebSocket;
  private readonly waiting = new Map<number, Waiting>();
  private nextSeq = 0;
  open = false;
  closed = false;

  private readonly onGone: () => void;
  private goneReported = false;

  constructor(url: URL, authorization: string, onGone: () => void) {
    this.onGone = onGone;
    // Node's WebSocket (undici) takes request headers in its second argument.
    this.socket = new WebSocket(url, {
      headers: { Authorization: authorization },
    } as unknown as string[]);
    // One that does not open in time (a half-open link) is given up like one that fails.
    const opening = setTimeout(() => {
      if (!this.open) this.close();
    }, SOCKET_ANSWER_TIMEOUT_MS);
    opening.unref?.();
    this.socket.addEventListener("open", () => {
      clearTimeout(opening);
      if (!this.closed) this.open = true;
    });
    this.socket.addEventListener("message", (event) => {
      let reply: unknown;
      try {
        reply = JSON.parse(String(event.data));
      } catch {
        this.close();
        return;
      }
      const seq =
        typeof reply === "object" && reply !== null && "seq" in reply ? reply.seq : undefined;
      const waiting = typeof seq === "number" ? this.waiting.get(seq) : undefined;
      if (waiting === undefined) return;
      this.waiting.delete(seq as number);
      clearTimeout(waiting.timer);
      if (typeof reply === "object" && reply !== null && "error" in reply)
        waiting.reject(new Error(`the push socket answered ${JSON.stringify(reply.error)}`));
      else waiting.resolve(reply);
    });
    const gone = () => {
      this.fail(new Error("the push socket closed"));
      this.reportGone();
    };
    this.socket.addEventListener("close", gone);
    this.socket.addEventListener("error", gone);
  }

  /**
   * Sends a push (`body`: its JSON) and waits for its answer; rejects on an error answer, a
   * timeout or a close.
   */
  push(body: string): Promise<unknown> {
    const seq = this.nextSeq++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiting.delete(seq);
        reject(new Error("the push socket did not answer in time"));
        this.close();
      }, SOCKET_ANSWER_TIMEOUT_MS);
      this.waiting.set(seq, { resolve, reject, timer });
      try {
        this.socket.send(`{"seq":${seq},"push":${body}}`);
      } catch {
        this.close();
      }
    });
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.open = false;
    this.fail(new Error("the push socket closed"));
    try {
      this.socket.close(1000, "done");
    } catch {
      // not open yet, or already closed
    }
    // Now, not when the close event comes: on a half-open link it may come late or never.
    this.reportGone();
  }

  private reportGone(): void {
    this.closed = true;
    if (this.goneReported) return;
    this.goneReported = true;
    this.onGone();
  }

  private fail(error: Error): void {
    this.open = false;
    for (const [seq, waiting] of this.waiting) {
      this.waiting.delete(seq);
      clearTimeout(waiting.timer);
      waiting.reject(error);
    }
  }
}

/** Calls the Worker's internal routes with the shared runner token. */
export function workerNotifier(options: {
  workerUrl: string;
  runnerToken: string;
}): WorkerNotifier {
  const base = new URL(options.workerUrl);
  const headers = { Authorization: runnerAuthorization(options.runnerToken) };
  const post = async (path: string): Promise<void> => {
    const response = await fetch(new URL(path, base), { method: "POST", headers });
    if (!response.ok) throw new Error(`${path} answered ${response.status}`);
  };
  const jobPath = (jobId: string, what: string) =>
    `/internal/jobs/${encodeURIComponent(jobId)}/${what}`;
  const sockets = new Map<string, PushSocket>();
  const retryAt = new Map<string, number>();
  /** The job's push socket, opened on first use (null while POST is to be used instead). */
  const pushSocket = (jobId: string): PushSocket | null => {
    const known = sockets.get(jobId);
    if (known !== undefined && !known.closed) return known;
    if (Date.now() < (retryAt.get(jobId) ?? 0)) return null;
    const url = new URL(jobPath(jobId, "push-socket"), base);
    url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
    const socket = new PushSocket(url, headers.Authorization, () => {
      // Not the socket of a job that finished (closeSocket took it out): nothing to retry.
      if (sockets.get(jobId) !== socket) return;
      sockets.delete(jobId);
      retryAt.set(jobId, Date.now() + SOCKET_RETRY_MS);
    });
    sockets.set(jobId, socket);
    return socket;
  };
  const closeSocket = (jobId: string): void => {
    const socket = sockets.get(jobId);
    sockets.delete(jobId);
    retryAt.delete(jobId);
    socket?.close();
  };
  return {
    wake: (jobId) => post(jobPath(jobId, "wake")),
    finished: (jobId) => {
      closeSocket(jobId);
      return post(jobPath(jobId, "finished"));
    },
    // By the job's push socket once it is open; by POST while it opens, after it failed, or for
    // a push too large for a message. A push is idempotent (the object takes only what is new),
    // so one whose answer was lost on the socket can go again by POST.
    async push(jobId: string, push: LivePush): Promise<LivePushAnswer> {
      const body = JSON.stringify(push);
      const socket = pushSocket(jobId);
      // In bytes, with room for the message's seq around the push.
      if (socket?.open && Buffer.byteLength(body) + 64 <= MAX_PUSH_MESSAGE_BYTES) {
        try {
          return answerOf(await socket.push(body), "the push socket");
        } catch {
          // Answered with an error, timed out or closed: POST says what is wrong, or gets it in.
        }
      }
      const path = jobPath(jobId, "entries");
      const response = await fetch(new URL(path, base), {
        method: "POST",
        headers: { ...headers, "Content-Type": "application/json" },
        body,
        signal: AbortSignal.timeout(PUSH_TIMEOUT_MS),
      });
      if (!response.ok) {
        await response.body?.cancel();
        throw new Error(`${path} answered ${response.status}`);
      }
      return answerOf(await response.json(), path);
    },
    // An archive call writes up to a few segments: it may take a while, not forever.
    async archive(jobId: string): Promise<ArchiveProgress> {
      const path = jobPath(jobId, "archive");
      const response = await fetch(new URL(path, base), {
        method: "POST",
        headers,
        signal: AbortSignal.timeout(ARCHIVE_TIMEOUT_MS),
      });
      if (!response.ok) {
        await response.body?.cancel();
        throw new Error(`${path} answered ${response.status}`);
      }
      return (await response.json()) as ArchiveProgress;
    },
  };
}
