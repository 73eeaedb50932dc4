import { mkdirSync, readdirSync, readFileSync, rmdirSync } from "node:fs";
import { mkdir, readFile, rmdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { SandboxError } from "./types.ts";

/**
 * One cgroup v2 group per build, for what the kernel counts of all its processes together:
 * CPU time (`cpu.stat`'s usage_usec, which every cgroup v2 group has with no controller
 * enabled) and one atomic kill (`cgroup.kill`) that no fork outruns. No controller is needed:
 * these machines are cgroup v1 hybrids whose v2 hierarchy has none delegated.
 *
 * The build's init joins `<build>`, before bwrap unshares the cgroup namespace, so inside the
 * build that group is the root and its path says nothing of the host; its commands join
 * `<build>/commands`, which the limits kill without touching the init (that would end the
 * session). Once a process is in, it cannot leave: the build has no /sys, and the groups are
 * root's.
 */
export interface BuildCgroup {
  /** A process writes its own pid here to join the build's group (the init). */
  readonly initProcs: string;
  /** ...and here to join its commands' group. */
  readonly commandProcs: string;
  /** CPU time of every process the build ever had, in microseconds. */
  cpuMicros(): Promise<number>;
  /** SIGKILL to every process of the build's commands, in one step. */
  killCommands(): Promise<void>;
  /** Kills what is left and removes the groups. */
  remove(): Promise<void>;
}

export interface BuildCgroups {
  open(name: string): Promise<BuildCgroup>;
}

/**
 * `sh -c JOIN_CGROUP procs file args...`: the shell writes its pid into `procs`, then becomes
 * `file args...`, so the command and all it starts are in the group from their first
 * instruction (Node cannot spawn into a cgroup itself).
 */
export const JOIN_CGROUP = 'echo $$ > "$0" && exec "$@"';

const PREFIX = "build-log-stream.";
const REMOVE_ATTEMPTS = 40;
const REMOVE_RETRY_MS = 50;

/**
 * The builds' groups go under the runner's own cgroup v2 group, in one group per runner
 * process (`build-log-stream.<pid>`); groups of runners that are gone are removed first.
 * Throws bad_config when there is no cgroup v2 hierarchy the runner can write.
 */
export function buildCgroups(): BuildCgroups {
  const base = ownCgroupDir();
  if (base === undefined)
    throw new SandboxError(
      "bad_config",
      "local sandbox: no cgroup v2 hierarchy is mounted (/sys/fs/cgroup or /sys/fs/cgroup/unified); it counts each build's CPU time",
    );
  removeStale(base);
  const runnerDir = join(base, `${PREFIX}${process.pid}`);
  try {
    mkdirSync(runnerDir, { recursive: true });
    readFileSync(join(runnerDir, "cpu.stat"), "utf8");
  } catch (cause) {
    throw new SandboxError(
      "bad_config",
      `local sandbox: cannot make a cgroup for builds in ${base} (it counts each build's CPU time): ${(cause as Error).message}`,
      { cause },
    );
  }
  registerExitCleanup(runnerDir);
  return {
    async open(name) {
      const dir = join(runnerDir, name);
      const commands = join(dir, "commands");
      await mkdir(commands, { recursive: true });
      const kill = async (group: string): Promise<void> => {
        await writeFile(join(group, "cgroup.kill"), "1").catch(() => undefined);
      };
      return {
        initProcs: join(dir, "cgroup.procs"),
        commandProcs: join(commands, "cgroup.procs"),
        async cpuMicros() {
          const stat = await readFile(join(dir, "cpu.stat"), "utf8");
          return Number(/^usage_usec (\d+)$/m.exec(stat)?.[1] ?? 0);
        },
        killCommands: () => kill(commands),
        async remove() {
          await kill(dir);
          // A killed process leaves its group once it is reaped: until then rmdir says EBUSY.
          for (const group of [commands, dir]) {
            for (let attempt = 1; ; attempt++) {
              try {
                await rmdir(group);
                break;
              } catch (error) {
                const code = (error as NodeJS.ErrnoException).code;
                if (code === "ENOENT") break;
                if (code !== "EBUSY" || attempt >= REMOVE_ATTEMPTS) throw error;
                await sleep(REMOVE_RETRY_MS);
              }
            }
          }
        },
      };
    },
  };
}

/** The runner's own group in the cgroup v2 hierarchy, as a directory; undefined without one. */
function ownCgroupDir(): string | undefined {
  const own = /^0::(\/.*)$/m.exec(readFileSync("/proc/self/cgroup", "utf8"))?.[1];
  if (own === undefined) return undefined;
  for (const line of readFileSync("/proc/self/mountinfo", "utf8").split("\n")) {
    const [fields, fsType] = line.split(" - ");
    if (!fsType?.startsWith("cgroup2 ")) continue;
    const [, , , root, mountPoint] = fields?.split(" ") ?? [];
    if (root === undefined || mountPoint === undefined) continue;
    // The mount shows the hierarchy from `root` down (a container's cgroup namespace).
    if (root === "/") return join(mountPoint, own);
    if (own === root || own.startsWith(`${root}/`)) return join(mountPoint, own.slice(root.length));
  }
  return undefined;
}

function removeStale(base: string): void {
  for (const entry of readdirSync(base)) {
    const pid = entry.startsWith(PREFIX) ? Number(entry.slice(PREFIX.length)) : Number.NaN;
    if (!Number.isSafeInteger(pid) || pid === process.pid || isAlive(pid)) continue;
    removeTree(join(base, entry));
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}

// Depth first; a group that still has processes stays (rmdir refuses it).
function removeTree(dir: string): void {
  try {
    for (const entry of readdirSync(dir, { withFileTypes: true }))
      if (entry.isDirectory()) removeTree(join(dir, entry.name));
    rmdirSync(dir);
  } catch {}
}

const cleanups = new Set<string>();
function registerExitCleanup(dir: string): void {
  if (cleanups.size === 0) process.once("exit", () => cleanups.forEach(removeTree));
  cleanups.add(dir);
}
