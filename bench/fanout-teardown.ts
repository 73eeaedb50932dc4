// Stops what bench/fanout.ts started (workerd, the bridge, redis-server), in reverse order, on
// success, on error, on SIGINT/SIGTERM, on an uncaught error and at a deadline for the whole run.

export interface Teardown {
  /** Registers a step; steps run last registered first. */
  add(name: string, run: () => Promise<void>): void;
  /** Runs every step once (later calls share the first run); a step that hangs is given up on. */
  run(): Promise<void>;
}

export interface TeardownOptions {
  /** After this the run is torn down and the process exits with 1, whatever is going on. */
  readonly deadlineMs: number;
  readonly stepTimeoutMs: number;
  readonly label: string;
}

export function createTeardown(options: TeardownOptions): Teardown {
  const steps: Array<{ name: string; run: () => Promise<void> }> = [];
  let running: Promise<void> | undefined;

  const runStep = async (name: string, step: () => Promise<void>): Promise<void> => {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<void>((resolve) => {
      timer = setTimeout(() => {
        console.error(
          `${options.label}: teardown: ${name} did not stop within ${options.stepTimeoutMs / 1000} s; going on`,
        );
        resolve();
      }, options.stepTimeoutMs);
    });
    try {
      await Promise.race([step(), timeout]);
    } catch (error) {
      console.error(`${options.label}: teardown: ${name} failed`, error);
    } finally {
      clearTimeout(timer);
    }
  };

  const run = (): Promise<void> => {
    running ??= (async () => {
      clearTimeout(deadline);
      for (let step = steps.pop(); step !== undefined; step = steps.pop())
        await runStep(step.name, step.run);
    })();
    return running;
  };

  const exitAfterTeardown = (code: number): void => {
    void run().finally(() => process.exit(code));
  };
  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    process.once(signal, () => {
      console.error(`\n${options.label}: ${signal}, tearing down`);
      exitAfterTeardown(130);
    });
  }
  process.once("uncaughtException", (error) => {
    console.error(`${options.label}: uncaught error, tearing down`, error);
    exitAfterTeardown(1);
  });
  const deadline = setTimeout(() => {
    console.error(
      `${options.label}: still running after ${options.deadlineMs / 1000} s, tearing down`,
    );
    exitAfterTeardown(1);
  }, options.deadlineMs);
  deadline.unref();

  return {
    add(name, step) {
      steps.push({ name, run: step });
    },
    run,
  };
}
