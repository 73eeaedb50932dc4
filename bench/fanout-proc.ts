// CPU and memory of the processes under load, read from /proc (Linux), for bench/fanout.ts:
// whether workerd, this process (viewers and bridge) or the machine's 2 cores ran out.
import { execFileSync } from "node:child_process";
import os from "node:os";
import { readProc, statFields } from "../tools/dev/proc.ts";

const CLOCK_TICKS_PER_S = clockTicks();

function clockTicks(): number {
  try {
    const value = Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim());
    return Number.isInteger(value) && value > 0 ? value : 100;
  } catch {
    return 100;
  }
}

/** User + system CPU seconds the process has used so far. */
function cpuSeconds(pid: number): number {
  const fields = statFields(pid);
  // utime and stime are fields 14 and 15 of stat, 12th and 13th after the name.
  return (
    (Number(fields?.[11] ?? Number.NaN) + Number(fields?.[12] ?? Number.NaN)) / CLOCK_TICKS_PER_S
  );
}

/** The process's resident set now, in MB. */
export function rssMb(pid: number): number {
  const match = /^VmRSS:\s+(\d+) kB$/m.exec(readProc(`${pid}/status`) ?? "");
  return match?.[1] === undefined ? Number.NaN : Number(match[1]) / 1024;
}

/** Busy and total CPU seconds of the whole machine (all cores). */
function machineSeconds(): { busy: number; total: number } {
  const first = (readProc("stat") ?? "").split("\n")[0] ?? "";
  const ticks = first.trim().split(/\s+/).slice(1, 9).map(Number);
  const total = ticks.reduce((sum, value) => sum + value, 0);
  const idle = (ticks[3] ?? 0) + (ticks[4] ?? 0);
  return { busy: (total - idle) / CLOCK_TICKS_PER_S, total: total / CLOCK_TICKS_PER_S };
}

export { commandOf, descendantPids, listenerOf } from "../tools/dev/proc.ts";

export interface ProcessUsage {
  readonly label: string;
  /** CPU used over the window, in % of one core. */
  readonly cpuPercent: number;
  /** CPU seconds used over the window. */
  readonly cpuSeconds: number;
  /** The largest resident set seen during the window. */
  readonly maxRssMb: number;
}

export interface UsageReport {
  readonly processes: readonly ProcessUsage[];
  /** The whole machine's busy share over the window, in % of all its cores. */
  readonly machineBusyPercent: number;
  /** CPU used by every other process on the machine (other work, not this bench), in % of one core. */
  readonly othersCpuPercent: number;
}

/**
 * Samples the processes from now until stop(): CPU from the difference of their counters,
 * memory as the largest RSS seen (checked every `everyMs`).
 */
export function sampleUsage(
  targets: ReadonlyArray<{ readonly label: string; readonly pid: number }>,
  everyMs = 250,
): { stop(): UsageReport } {
  const startedAt = performance.now();
  const machineStart = machineSeconds();
  const cpuStart = targets.map((target) => cpuSeconds(target.pid));
  const maxRss = targets.map((target) => rssMb(target.pid));
  const timer = setInterval(() => {
    targets.forEach((target, i) => {
      maxRss[i] = Math.max(maxRss[i] ?? 0, rssMb(target.pid));
    });
  }, everyMs);
  timer.unref();
  return {
    stop() {
      clearInterval(timer);
      const seconds = (performance.now() - startedAt) / 1000;
      const machineEnd = machineSeconds();
      const processes = targets.map((target, i) => {
        const used = cpuSeconds(target.pid) - (cpuStart[i] ?? Number.NaN);
        return {
          label: target.label,
          cpuPercent: (used / seconds) * 100,
          cpuSeconds: used,
          maxRssMb: Math.max(maxRss[i] ?? 0, rssMb(target.pid)),
        };
      });
      const busyShare =
        (machineEnd.busy - machineStart.busy) / (machineEnd.total - machineStart.total);
      const ours = processes.reduce((sum, usage) => sum + usage.cpuPercent, 0);
      return {
        processes,
        machineBusyPercent: busyShare * 100,
        othersCpuPercent: Math.max(0, busyShare * os.availableParallelism() * 100 - ours),
      };
    },
  };
}
