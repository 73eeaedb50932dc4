import { Hono } from "hono";
import { HTTPException } from "hono/http-exception";
import { ApiError, type ErrorBody } from "./errors.ts";
import { consumeJobs } from "./queue.ts";
import { internal } from "./routes/internal.ts";
import { jobs } from "./routes/jobs.ts";
import { sweep } from "./sweep.ts";

export { JobStream } from "./job-stream.ts";

const app = new Hono<{ Bindings: Env }>();

app.get("/healthz", (c) => c.json({ ok: true }));
app.route("/api/jobs", jobs);
app.route("/internal", internal);

app.notFound((c) => c.json<ErrorBody>({ error: { code: "not_found", message: `no route for ${c.req.method} ${new URL(c.req.url).pathname}` } }, 404));

app.onError((error, c) => {
  if (error instanceof ApiError) {
    return c.json<ErrorBody>({ error: { code: error.code, message: error.message } }, error.status);
  }
  if (error instanceof HTTPException) {
    return c.json<ErrorBody>({ error: { code: "http_error", message: error.message } }, error.status);
  }
  console.error("build-log-stream: unhandled error", error);
  return c.json<ErrorBody>({ error: { code: "internal", message: "internal error" } }, 500);
});

export default {
  fetch: app.fetch,
  queue: consumeJobs,
  async scheduled(_controller, env, ctx) {
    ctx.waitUntil(
      sweep(env).then(
        (result) => {
          if (result.failed.length + result.archived.length > 0) console.log(`sweep: failed ${result.failed.join(",") || "none"}; archived ${result.archived.join(",") || "none"}`);
        },
        (error: unknown) => console.error("sweep failed", error),
      ),
    );
  },
} satisfies ExportedHandler<Env>;
