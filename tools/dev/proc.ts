// Processes below this one, read from /proc (Linux): the stack's tools find workerd by it (to
// kill it from outside, as a crash would), the benchmarks to measure it.
import { readdirSync, readFileSync, readlinkSync } from "node:fs";
import path from "node:path";

export function readProc(file: string): string | undefined {
  try {
    return readFileSync(`/proc/${file}`, "utf8");
  } catch {
    return undefined;
  }
}

/** The fields of /proc/PID/stat after the command name: [state, ppid, ...]. */
export function statFields(pid: number): string[] | undefined {
  const stat = readProc(`${pid}/stat`);
  return stat?.slice(stat.lastIndexOf(")") + 2).split(" ");
}

/** Pids of every process below `root`. */
export function descendantPids(root: number): number[] {
  const children = new Map<number, number[]>();
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    const parent = Number(statFields(Number(name))?.[1]);
    if (!Number.isInteger(parent)) continue;
    const list = children.get(parent) ?? [];
    list.push(Number(name));
    children.set(parent, list);
  }
  const found: number[] = [];
  const queue = [root];
  for (let i = 0; i < queue.length && i < 10_000; i++) {
    for (const child of children.get(queue[i] ?? -1) ?? []) {
      found.push(child);
      queue.push(child);
    }
  }
  return found;
}

export function commandOf(pid: number): string | undefined {
  try {
    return path.basename(readlinkSync(`/proc/${pid}/exe`));
  } catch {
    return readProc(`${pid}/comm`)?.trim();
  }
}

/** The pid among `pids` that listens on loopback TCP `port` (matched by socket inode). */
export function listenerOf(pids: readonly number[], port: number): number | undefined {
  const portHex = port.toString(16).toUpperCase().padStart(4, "0");
  const inodes = new Set<string>();
  for (const table of ["net/tcp", "net/tcp6"]) {
    for (const row of (readProc(table) ?? "").split("\n").slice(1)) {
      const cols = row.trim().split(/\s+/);
      // local_address is HEXIP:HEXPORT; state 0A is LISTEN; the inode is the 10th column.
      if (cols[1]?.endsWith(`:${portHex}`) && cols[3] === "0A" && cols[9] !== undefined)
        inodes.add(`socket:[${cols[9]}]`);
    }
  }
  for (const pid of pids) {
    let fds: string[] = [];
    try {
      fds = readdirSync(`/proc/${pid}/fd`);
    } catch {
      continue;
    }
    for (const fd of fds) {
      try {
        if (inodes.has(readlinkSync(`/proc/${pid}/fd/${fd}`))) return pid;
      } catch {
        // the fd closed meanwhile
      }
    }
  }
  return undefined;
}
