import type { JobSpec } from "../../src/shared/job-spec.ts";
import type { Stack } from "../../tools/dev/stack.ts";
import { stackUser } from "../support/stack-client.ts";
import { waitUntil } from "./host.ts";

// A signed-in user's calls to the stack's public API, as a hostile user would make them.
export interface UserClient {
  submit(spec: Partial<JobSpec>): Promise<string>;
  status(jobId: string): Promise<string>;
  /** Waits for the job's end and returns its status and whole log as text. */
  finished(jobId: string): Promise<{ status: string; log: string }>;
}

export function userClient(stack: Stack, userId: string): UserClient {
  const user = stackUser(stack, userId);
  const status = async (jobId: string): Promise<string> =>
    ((await (await user.api(`/api/jobs/${jobId}`)).json()) as { status: string }).status;
  return {
    submit: (spec) => user.createJob(spec),
    status,
    async finished(jobId) {
      const ended = await waitUntil(`job ${jobId} to end`, 90_000, async () => {
        const current = await status(jobId);
        return current === "ready" || current === "failed" ? current : undefined;
      });
      return { status: ended, log: await (await user.api(`/api/jobs/${jobId}/logs.txt`)).text() };
    },
  };
}

export const step = (name: string, command: string) => ({
  name,
  phase: "build" as const,
  command,
});

/** A build that runs until it is killed, leaving a setsid survivor; both carry `marker`. */
export function longBuildWithSurvivor(marker: string): Partial<JobSpec> {
  return {
    steps: [
      step(
        "Long build",
        `setsid sh -c 'sleep 600; : ${marker}' > /dev/null 2>&1 &\nsh -c 'sleep 600; : ${marker}'`,
      ),
    ],
  };
}
