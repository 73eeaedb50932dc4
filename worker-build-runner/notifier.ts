import type { LivePush, LivePushAnswer } from "../src/shared/live-push.ts";
import { runnerAuthorization } from "../src/shared/runner-token.ts";
import type { ArchiveProgress, WorkerNotifier } from "./run-job.ts";

// A push that takes longer than this is given up: the object reads what it missed from Redis.
const PUSH_TIMEOUT_MS = 10_000;
const ARCHIVE_TIMEOUT_MS = 60_000;

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
  return {
    wake: (jobId) => post(jobPath(jobId, "wake")),
    finished: (jobId) => post(jobPath(jobId, "finished")),
    async push(jobId: string, push: LivePush): Promise<LivePushAnswer> {
      const path = jobPath(jobId, "entries");
      const response = await fetch(new URL(path, base), {
        method: "POST",
        headers: { ...headers, "Content-Type": "application/json" },
        body: JSON.stringify(push),
        signal: AbortSignal.timeout(PUSH_TIMEOUT_MS),
      });
      if (!response.ok) {
        await response.body?.cancel();
        throw new Error(`${path} answered ${response.status}`);
      }
      const answer: unknown = await response.json();
      const viewers =
        typeof answer === "object" && answer !== null && "viewers" in answer
          ? answer.viewers
          : undefined;
      if (typeof viewers !== "number") throw new Error(`${path} answered without a viewer count`);
      // An older Worker does not say; it does not pace.
      const paced =
        typeof answer === "object" && answer !== null && "paced" in answer && answer.paced === true;
      return { viewers, paced };
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
