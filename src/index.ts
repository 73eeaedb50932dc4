import type { MiddlewareHandler } from "hono";
import { Hono } from "hono";
import { cors } from "hono/cors";
import { HTTPException } from "hono/http-exception";
import { csrfProtection } from "./http/csrf.ts";
import { ApiError, type ErrorBody } from "./http/errors.ts";
import { internal } from "./http/internal.ts";
import { jobs } from "./http/jobs.ts";
import { devSignIn, viewer } from "./http/viewer.ts";
import { consumeJobs } from "./jobs/queue.ts";
import { sweep } from "./jobs/sweep.ts";

export { JobDispatcher } from "./jobs/dispatcher.ts";
export { JobStream } from "./stream/job-stream.ts";

/**
 * CORS for the origins listed in CORS_ORIGINS (comma-separated, exact origins), with
 * credentials, so an app on another origin can ask for a stream ticket and open the stream.
 * Any other origin gets no CORS header at all (a preflight from it is answered empty), so its
 * browser keeps the response from the page. Checked once per env; a malformed list is a 500
 * naming it on every request, never a wider allowance.
 */
function corsFromEnv(): MiddlewareHandler<{ Bindings: Env }> {
  const byEnv = new WeakMap<Env, { origins: ReadonlySet<string>; allow: MiddlewareHandler }>();
  return async (c, next) => {
    let config = byEnv.get(c.env);
    if (config === undefined) {
      const origins = new Set(corsOrigins(c.env.CORS_ORIGINS));
      config = {
        origins,
        allow: cors({
          origin: (origin) => (origins.has(origin) ? origin : null),
          credentials: true,
          allowMethods: ["GET", "POST"],
          // Last-Event-ID: EventSource sends it on a reconnect, which makes that a preflighted request.
          allowHeaders: ["Authorization", "Content-Type", "Last-Event-ID"],
          exposeHeaders: ["Retry-After", "WWW-Authenticate"],
          maxAge: 600,
        }),
      };
      byEnv.set(c.env, config);
    }
    const origin = c.req.header("Origin");
    if (origin !== undefined && config.origins.has(origin)) return config.allow(c, next);
    if (c.req.method === "OPTIONS" && c.req.header("Access-Control-Request-Method") !== undefined) {
      c.header("Vary", "Origin");
      return c.body(null, 204);
    }
    await next();
    c.header("Vary", "Origin", { append: true });
  };
}

function corsOrigins(value: string | undefined): string[] {
  const origins = (value ?? "")
    .split(",")
    .map((item) => item.trim())
    .filter((item) => item !== "");
  const bad = origins.filter(
    (origin) => !URL.canParse(origin) || new URL(origin).origin !== origin,
  );
  if (bad.length > 0) {
    throw new Error(
      `CORS_ORIGINS must list origins such as https://app.example.com (no path, no trailing slash, no "*"): ${bad.map((item) => JSON.stringify(item)).join(", ")}`,
    );
  }
  return origins;
}

const app = new Hono<{ Bindings: Env }>();

app.get("/healthz", (c) => c.json({ ok: true }));
app.use("/api/*", corsFromEnv());
const corsOriginsByEnv = new WeakMap<Env, ReadonlySet<string>>();
app.use(
  "/api/*",
  csrfProtection({
    allowedOrigins: (c) => {
      const env = c.env as Env;
      let origins = corsOriginsByEnv.get(env);
      if (origins === undefined) {
        origins = new Set(corsOrigins(env.CORS_ORIGINS));
        corsOriginsByEnv.set(env, origins);
      }
      return origins;
    },
  }),
);
app.route("/api/jobs", jobs);
app.route("/internal", internal);
app.route("/", viewer);
app.route("/dev", devSignIn);

app.notFound((c) =>
  c.json<ErrorBody>(
    {
      error: {
        code: "not_found",
        message: `no route for ${c.req.method} ${new URL(c.req.url).pathname}`,
      },
    },
    404,
  ),
);

app.onError((error, c) => {
  if (error instanceof ApiError) {
    return c.json<ErrorBody>({ error: { code: error.code, message: error.message } }, error.status);
  }
  if (error instanceof HTTPException) {
    return c.json<ErrorBody>(
      { error: { code: "http_error", message: error.message } },
      error.status,
    );
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
          if (result.failed.length + result.archived.length > 0)
            console.log(
              `sweep: failed ${result.failed.join(",") || "none"}; archived ${result.archived.join(",") || "none"}`,
            );
        },
        (error: unknown) => console.error("sweep failed", error),
      ),
    );
  },
} satisfies ExportedHandler<Env>;
