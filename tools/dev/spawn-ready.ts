// Starts a helper process (a service of the local system) and waits until it prints the line
// that says it is ready, e.g. `UPSTASH_REDIS_REST_URL=http://...`.
import { type ChildProcess, type StdioOptions, spawn } from "node:child_process";
import { once } from "node:events";
import { createInterface } from "node:readline";

export interface ReadyProcess {
  readonly child: ChildProcess;
  /** The ready line's match of `ready`. */
  readonly match: RegExpExecArray;
  /** Signals the process (default SIGTERM) and waits for it to exit; a no-op once it has. */
  stop(signal?: NodeJS.Signals): Promise<void>;
}

export interface SpawnReadyOptions {
  readonly args: readonly string[];
  /** Matched against each stdout line; the first match means ready. */
  readonly ready: RegExp;
  /** Named in the error when the process exits before it is ready. */
  readonly what: string;
  readonly cwd?: string;
  readonly env?: NodeJS.ProcessEnv;
  readonly stderr?: "inherit" | "ignore";
  /** Copy its stdout lines to this process's stderr. */
  readonly echo?: boolean;
}

// Of a stderr not shown: how many of its last lines an early exit's error quotes.
const STDERR_LINES_KEPT = 20;

/** Runs `node <args>` with this process's Node. */
export function spawnNodeReady(options: SpawnReadyOptions): Promise<ReadyProcess> {
  // stdin stays an open pipe: a helper can watch it to notice this process dying. A stderr not
  // shown is still read, so that a process that dies before it is ready says why.
  const stdio: StdioOptions = ["pipe", "pipe", options.stderr === "ignore" ? "pipe" : "inherit"];
  const child = spawn(process.execPath, [...options.args], {
    cwd: options.cwd,
    env: options.env ?? process.env,
    stdio,
  });
  const stdout = child.stdout;
  if (stdout === null) throw new Error(`${options.what}: no stdout pipe`);
  const lines = createInterface({ input: stdout });
  const lastErrors: string[] = [];
  if (child.stderr !== null)
    createInterface({ input: child.stderr }).on("line", (line) => {
      lastErrors.push(line);
      if (lastErrors.length > STDERR_LINES_KEPT) lastErrors.shift();
    });
  return new Promise((resolve, reject) => {
    child.once("exit", (code) => {
      const said = lastErrors.length > 0 ? `; its last words: ${lastErrors.join(" | ")}` : "";
      reject(new Error(`${options.what} exited with code ${code} before it was ready${said}`));
    });
    lines.on("line", (line) => {
      if (options.echo) process.stderr.write(`${line}\n`);
      const match = options.ready.exec(line);
      if (match === null) return;
      resolve({
        child,
        match,
        async stop(signal = "SIGTERM") {
          if (child.exitCode !== null || child.signalCode !== null) return;
          const exited = once(child, "exit");
          child.kill(signal);
          await exited;
        },
      });
    });
  });
}
