import type { WorkerNotifier } from "./run-job.ts";

/** Calls the Worker's internal routes with the shared runner token. */
export function workerNotifier(options: {
  workerUrl: string;
  runnerToken: string;
}): WorkerNotifier {
  const base = new URL(options.workerUrl);
  const post = async (path: string): Promise<void> => {
    const response = await fetch(new URL(path, base), {
      method: "POST",
      headers: { Authorization: `Bearer ${options.runnerToken}` },
    });
    if (!response.ok) throw new Error(`${path} answered ${response.status}`);
  };
  return {
    wake: (jobId) => post(`/internal/jobs/${encodeURIComponent(jobId)}/wake`),
    finished: (jobId) => post(`/internal/jobs/${encodeURIComponent(jobId)}/finished`),
  };
}
