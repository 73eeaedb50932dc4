import type { LimitExceeded } from "./types.ts";

// What the local sandbox needs from the place a session's commands run in: bubblewrap's
// namespaces (bwrap-jail.ts) or, for development only, a bare directory (host-jail.ts).

export interface CommandLine {
  readonly file: string;
  readonly args: readonly string[];
  /** The host directory to spawn in. */
  readonly cwd: string;
  /** The spawned process is a wrapper that exits as the command inside does (nsenter). */
  readonly relaysExit: boolean;
}

export interface Jail {
  /** The workdir as commands see it. */
  readonly workdir: string;
  /** What every command's environment starts from (PATH, HOME, the CA-trust variables, ...). */
  readonly env: Readonly<Record<string, string>>;
  /** Whether a host process is one of the jail's (true for any, when it cannot tell). */
  owns(pid: number): boolean;
  /** Why the jail can run nothing any more, if it cannot (its processes were all killed). */
  ended(): string | undefined;
  /** Whether `path` (as commands see it) is a directory; false when it does not exist. */
  isDirectory(path: string): Promise<boolean>;
  /** How to run `/bin/sh -c command` in `cwd` (as commands see it) inside the jail. */
  commandLine(cwd: string, command: string): CommandLine;
  /** Writes a file at `target`, a path already checked to lie inside the workdir. */
  writeFile(target: string, content: string | Uint8Array): Promise<void>;
  /**
   * The limit that stopped a command which started at `startedAt` and ended with `exitCode`,
   * if a limit is what ended it.
   */
  limitExceeded(startedAt: number, exitCode: number): Promise<LimitExceeded | undefined>;
  /** Ends every process in the jail and removes its files. */
  destroy(): Promise<void>;
}

export interface JailFactory {
  /** True when a build cannot see or reach the runner (namespaces, own uid). */
  readonly isolated: boolean;
  open(): Promise<Jail>;
}
