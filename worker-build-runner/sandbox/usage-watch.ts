import { readdir, readFile } from "node:fs/promises";

export interface BuildUsage {
  readonly over: "memory" | "processes" | "cpu";
  /** When the sample that found it was taken. */
  readonly at: number;
}

export interface UsageWatch {
  /**
   * The limit the build went over at or after `since`, if it did, with a fresh sample: a fork
   * refused a moment ago may not have been sampled yet.
   */
  exceededSince(since: number): Promise<BuildUsage | undefined>;
  stop(): void;
}

const SAMPLE_MS = 250;
const AFTER_FAILURE_PROCESS_SLACK = 2;

/**
 * Samples a build's processes through its own /proc (only its PID namespace is there): their
 * private resident memory (RssAnon + RssShmem) together, and their tasks (processes and
 * threads, what RLIMIT_NPROC counts); and the CPU time all of them ever used, from the build's
 * cgroup. Over the memory or CPU limit, or at the process limit (forks are being refused; after
 * a failed command, within two of it), it calls `onExceeded` to kill them. Memory is not the
 * cgroup's: cgroup v2's memory controller is not delegated on the machines this runs on (cgroup
 * v1 hybrids). Past the CPU limit every sample kills again: the build has used its time.
 */
export function watchUsage(options: {
  readonly procDir: string;
  readonly limits: {
    readonly memoryBytes: number;
    readonly processes: number;
    readonly cpuSeconds: number;
  };
  /** CPU time of all the build's processes so far, in microseconds. */
  readonly cpuMicros: () => Promise<number>;
  readonly onExceeded: () => Promise<void>;
}): UsageWatch {
  // The latest sample over each limit: enough to answer exceededSince, and bounded.
  const exceeded = new Map<BuildUsage["over"], BuildUsage>();
  let sampling: Promise<void> | undefined;
  const sample = (processSlack: number): Promise<void> => {
    sampling ??= measure(processSlack).finally(() => {
      sampling = undefined;
    });
    return sampling;
  };
  const measure = async (processSlack: number): Promise<void> => {
    let memory = 0;
    let tasks = 0;
    for (const entry of await readdir(options.procDir).catch(() => [])) {
      if (!/^\d+$/.test(entry)) continue;
      const status = await readFile(`${options.procDir}/${entry}/status`, "utf8").catch(() => "");
      memory += (field(status, "RssAnon") + field(status, "RssShmem")) * 1024;
      tasks += field(status, "Threads");
    }
    const cpuMicros = await options.cpuMicros().catch(() => 0);
    const over =
      cpuMicros > options.limits.cpuSeconds * 1e6
        ? "cpu"
        : memory > options.limits.memoryBytes
          ? "memory"
          : tasks >= options.limits.processes - processSlack
            ? "processes"
            : undefined;
    if (over !== undefined) {
      exceeded.set(over, { over, at: Date.now() });
      await options.onExceeded();
    }
  };
  const timer = setInterval(() => {
    sample(0).catch(() => undefined);
  }, SAMPLE_MS);
  timer.unref();
  return {
    async exceededSince(since) {
      // A fresh sample, after any under way. The process whose fork was refused, and the shell
      // that gave up, may be gone already: hence the slack.
      await sampling;
      await sample(AFTER_FAILURE_PROCESS_SLACK);
      return [...exceeded.values()].find((usage) => usage.at >= since);
    },
    stop: () => clearInterval(timer),
  };
}

function field(status: string, name: string): number {
  const match = new RegExp(`^${name}:\\s+(\\d+)`, "m").exec(status);
  return match?.[1] === undefined ? 0 : Number(match[1]);
}
