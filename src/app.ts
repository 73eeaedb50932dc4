// The Hono app alone, apart from the Worker's entry (src/index.ts), so tests can read its
// routes (test/worker/openapi.test.ts) without loading the entry's exports.
import { Hono } from "hono";
import { cors } from "hono/cors";
import { createMiddleware } from "hono/factory";
import { HTTPException } from "hono/http-exception";
import { describeRoute } from "hono-openapi";
import { workerConfig } from "./config.ts";
import { csrfProtection } from "./http/csrf.ts";
import { internal } from "./http/internal.ts";
import { jobs } from "./http/jobs.ts";
import { openApiDocument } from "./http/openapi.ts";
import { jobStream } from "./http/stream.ts";
import { devSignIn, viewer } from "./http/viewer.ts";
import { isRedisUnavailable } from "./redis.ts";
import { ApiError, errorBody } from "./shared/errors.ts";
import { log } from "./shared/log.ts";

const REDIS_RETRY_AFTER_SECONDS = 2;

/**
 * CORS for the origins listed in CORS_ORIGINS (exact origins), with credentials, so an app on
 * another origin can ask for a stream ticket and open the stream. Any other origin gets no CORS
 * header at all (a preflight from it is answered empty), so its browser keeps the response from
 * the page. A malformed list fails the configuration: a 500 naming it, never a wider allowance.
 */
const corsFromConfig = createMiddleware<{ Bindings: Env }>(async (c, next) => {
  const origins = workerConfig(c.env).corsOrigins;
  const origin = c.req.header("Origin");
  if (origin !== undefined && origins.has(origin)) {
    return cors({
      origin,
      credentials: true,
      allowMethods: ["GET", "POST"],
      // Last-Event-ID: EventSource sends it on a reconnect, which makes that a preflighted request.
      allowHeaders: ["Authorization", "Content-Type", "Last-Event-ID"],
      exposeHeaders: ["Retry-After", "WWW-Authenticate"],
      maxAge: 600,
    })(c, next);
  }
  if (c.req.method === "OPTIONS" && c.req.header("Access-Control-Request-Method") !== undefined) {
    c.header("Vary", "Origin");
    return c.body(null, 204);
  }
  await next();
  c.header("Vary", "Origin", { append: true });
});

/** The Worker's HTTP face: every route, its middleware and its error handling. */
export const app = new Hono<{ Bindings: Env }>();

app.get(
  "/healthz",
  describeRoute({
    summary: "Liveness",
    tags: ["meta"],
    responses: { 200: { description: "`{ok: true}`" } },
  }),
  (c) => c.json({ ok: true }),
);
app.use("/api/*", corsFromConfig);
app.use(
  "/api/*",
  csrfProtection({ allowedOrigins: (c) => workerConfig(c.env as Env).corsOrigins }),
);
app.get(
  "/api/openapi.json",
  describeRoute({
    summary: "This document",
    tags: ["meta"],
    responses: { 200: { description: "the OpenAPI 3.1 document of the public API" } },
  }),
  openApiDocument(app),
);
app.route("/api/jobs", jobStream);
app.route("/api/jobs", jobs);
app.route("/internal", internal);
app.route("/", viewer);
app.route("/dev", devSignIn);

app.notFound((c) =>
  c.json(
    errorBody("not_found", `no route for ${c.req.method} ${new URL(c.req.url).pathname}`),
    404,
  ),
);

app.onError((error, c) => {
  if (error instanceof ApiError) {
    return c.json(errorBody(error.code, error.message), error.status);
  }
  if (error instanceof HTTPException) {
    return c.json(errorBody("http_error", error.message), error.status);
  }
  if (isRedisUnavailable(error)) {
    log.warn(`build-log-stream: Redis is unavailable: ${error.message.slice(0, 200)}`);
    c.header("Retry-After", String(REDIS_RETRY_AFTER_SECONDS));
    return c.json(errorBody("store_unavailable", "the log store is not answering; retry"), 503);
  }
  log.error("build-log-stream: unhandled error", error);
  return c.json(errorBody("internal", "internal error"), 500);
});
