/**
 * The jobs running in this runner that can be cancelled, by id: the service's cancel route and
 * each job's lease heartbeat (which sees a cancel stored in Redis) reach a running job here.
 */
export interface JobCancels {
  /** While the job runs: `cancel` stops it, once, saying who asked. Returns the unregister. */
  register(jobId: string, cancel: (by: string) => void): () => void;
  /** Cancels the job if it runs here; false when it does not. */
  cancel(jobId: string, by: string): boolean;
}

export function createJobCancels(): JobCancels {
  const running = new Map<string, (by: string) => void>();
  return {
    register(jobId, cancel) {
      running.set(jobId, cancel);
      return () => {
        if (running.get(jobId) === cancel) running.delete(jobId);
      };
    },
    cancel(jobId, by) {
      const cancel = running.get(jobId);
      if (cancel === undefined) return false;
      cancel(by);
      return true;
    },
  };
}
