/**
 * A job id: letters, digits, `_` and `-`, 1 to 64 characters, starting with a letter or digit.
 * Checked before any Redis key or R2 path is built from it, so a hostile id cannot reach
 * another key (`*`, `:`, `{`), a path (`..`, `/`) or a header (`\r\n`).
 */
export const JOB_ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$/;

export function isValidJobId(value: string): boolean {
  return JOB_ID_PATTERN.test(value);
}

function checkedJobId(jobId: string): string {
  if (!isValidJobId(jobId)) {
    throw new TypeError(
      `invalid job id ${JSON.stringify(jobId.slice(0, 80))}: expected ${JOB_ID_PATTERN}`,
    );
  }
  return jobId;
}

/** The Redis Stream holding a job's log entries. */
export function logStreamKey(jobId: string): string {
  return `job:${checkedJobId(jobId)}:logs`;
}

/** Set by the sweep when it first finds a running job's lease gone (ms); cleared when it is back. */
export function leaseLapseKey(jobId: string): string {
  return `job:${checkedJobId(jobId)}:lapsed`;
}

/** The job's record (JSON): owner, status and times. */
export function jobKey(jobId: string): string {
  return `job:${checkedJobId(jobId)}:meta`;
}

/** Held by the runner while it runs the job (SET PX, refreshed); when it expires the runner is lost. */
export function leaseKey(jobId: string): string {
  return `job:${checkedJobId(jobId)}:lease`;
}

/**
 * A cancel asked for while the job ran (JSON `{by, at}`, expires in a day): the runner sees it in
 * its lease heartbeat when the Worker's direct call to it did not arrive.
 */
export function cancelKey(jobId: string): string {
  return `job:${checkedJobId(jobId)}:cancel`;
}

/** Sorted set of jobs waiting for a runner (score: creation time), for the sweep that fails stuck ones. */
export const QUEUED_JOBS_KEY = "jobs:queued";
/** Sorted set of running jobs (score: start time), for the sweep that finds lost runners. */
export const RUNNING_JOBS_KEY = "jobs:running";
/** Sorted set of ended jobs whose log is not archived yet (score: end time). */
export const UNARCHIVED_JOBS_KEY = "jobs:unarchived";

// A Clerk user id (`user_...`) as a key part; any other text is escaped so it cannot reach
// another key (`:`, `{`, `*`).
function userKeyPart(userId: string): string {
  return encodeURIComponent(userId);
}

/** Jobs a user created in one window of the creation rate limit (INCR, expires after two). */
export function jobsCreatedKey(userId: string, window: number): string {
  return `quota:${userKeyPart(userId)}:created:${window}`;
}

/**
 * How far the archive has got (JSON `{through, lines, complete}`), written after each segment:
 * the runner trims the live copy only below `through`.
 */
export function archiveStateKey(jobId: string): string {
  return `job:${checkedJobId(jobId)}:archive`;
}

/** Held while one invocation writes the job's segments, so two never write the same one. */
export function archiveLockKey(jobId: string): string {
  return `job:${checkedJobId(jobId)}:archive-lock`;
}
