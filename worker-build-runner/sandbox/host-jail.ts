import { statSync } from "node:fs";
import { lstat, mkdir, mkdtemp, realpath, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import type { Jail, JailFactory } from "./jail.ts";
import { SandboxError } from "./types.ts";

/**
 * SANDBOX=local-unsafe, for development on a machine without bubblewrap: commands run as the
 * runner's own user in a fresh directory under `rootDir`. Their environment holds nothing of
 * the runner's, but they can read its files and processes and reach its ports.
 */
export function hostJail(rootDirOption: string | undefined): JailFactory {
  const rootDir = resolve(rootDirOption ?? tmpdir());
  if (statSync(rootDir, { throwIfNoEntry: false })?.isDirectory() !== true)
    throw new SandboxError("bad_config", `local sandbox: rootDir ${rootDir} is not a directory`);
  const inherited: Record<string, string> = {
    PATH: process.env.PATH ?? "/usr/local/bin:/usr/bin:/bin",
  };
  for (const name of ["LANG", "LC_ALL"]) {
    const value = process.env[name];
    if (value !== undefined) inherited[name] = value;
  }

  return {
    isolated: false,
    async open(): Promise<Jail> {
      let workdir: string;
      try {
        // realpath: the workdir is compared with resolved paths (os.tmpdir() may be a symlink).
        workdir = await realpath(await mkdtemp(join(rootDir, "build-")));
      } catch (cause) {
        throw new SandboxError(
          "sandbox_create_failed",
          `local sandbox: cannot create a directory in ${rootDir}`,
          { cause },
        );
      }
      return {
        workdir,
        env: { ...inherited, HOME: workdir },
        owns: () => true,
        ended: () => undefined,
        isDirectory: (path) =>
          stat(path).then(
            (info) => info.isDirectory(),
            () => false,
          ),
        commandLine: (cwd, command) => ({
          file: "/bin/sh",
          args: ["-c", command],
          cwd,
          relaysExit: false,
        }),
        async writeFile(target, content) {
          await assertNoSymlinkEscape(workdir, target);
          await mkdir(dirname(target), { recursive: true });
          await writeFile(target, content);
        },
        limitExceeded: async () => undefined,
        destroy: () => rm(workdir, { recursive: true, force: true, maxRetries: 3 }),
      };
    },
  };
}

/**
 * The build writes into its workdir too, so a symlink there could point a later writeFile at the
 * runner's own files. Every existing component of the path must resolve inside the workdir.
 */
async function assertNoSymlinkEscape(workdir: string, target: string): Promise<void> {
  let current = workdir;
  for (const part of target.slice(workdir.length + 1).split("/")) {
    current = `${current}/${part}`;
    const info = await lstat(current).catch(() => undefined);
    if (info === undefined) return; // the rest is created fresh
    if (!info.isSymbolicLink()) continue;
    const real = await realpath(current).catch(() => undefined);
    if (real === undefined || !(real === workdir || real.startsWith(`${workdir}/`))) {
      throw new SandboxError(
        "bad_path",
        `writeFile: ${JSON.stringify(target)} goes through a symlink that leaves the workdir`,
      );
    }
    current = real;
  }
}
