import { app } from "./app.ts";
import { consumeJobs } from "./jobs/queue.ts";
import { sweep } from "./jobs/sweep.ts";
import { log } from "./shared/log.ts";

export { JobDispatcher } from "./jobs/dispatcher.ts";
export { JobStream } from "./stream/job-stream.ts";

export default {
  fetch: app.fetch,
  queue: consumeJobs,
  async scheduled(_controller, env, ctx) {
    ctx.waitUntil(
      sweep(env).then(
        (result) => {
          if (result.failed.length + result.archived.length > 0)
            log.info(
              `sweep: failed ${result.failed.join(",") || "none"}; archived ${result.archived.join(",") || "none"}`,
            );
        },
        (error: unknown) => log.error("sweep failed", error),
      ),
    );
  },
} satisfies ExportedHandler<Env>;
