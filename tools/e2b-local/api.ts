import { type Context, Hono } from "hono";
import { z } from "zod";
import type { Sandbox } from "../../worker-build-runner/sandbox/types.ts";
import type { E2BLocalFaultInjector } from "./faults.ts";
import type { components } from "./generated/api.ts";
import type { HostedSandbox } from "./hosted-sandbox.ts";
import { hostSandbox } from "./hosted-sandbox.ts";

type Schemas = components["schemas"];

/** The envd version the server claims: it decides which protocol details the SDK uses. */
export const ENVD_VERSION = "0.5.7";
// E2B's defaults and limits for a sandbox's lifetime, in seconds.
const DEFAULT_TIMEOUT_SECONDS = 15;
const MAX_TIMEOUT_SECONDS = 24 * 60 * 60;

const newSandboxSchema = z.object({
  templateID: z.string().min(1),
  timeout: z.number().int().min(0).max(MAX_TIMEOUT_SECONDS).optional(),
  envVars: z.record(z.string(), z.string()).optional(),
  metadata: z.record(z.string(), z.string()).optional(),
});
const timeoutSchema = z.object({ timeout: z.number().int().min(0).max(MAX_TIMEOUT_SECONDS) });

export interface ApiDeps {
  readonly apiKey: string;
  readonly sandbox: Sandbox;
  readonly sandboxes: Map<string, HostedSandbox>;
  readonly faults: E2BLocalFaultInjector;
  /** The `domain` answered to the SDK; none (the SDK's own) when undefined. */
  readonly domain?: string;
}

/** The E2B sandbox API, as much of it as the SDK's Sandbox class calls for a sandbox's life. */
export function sandboxApi(deps: ApiDeps): Hono {
  const app = new Hono();
  const error = (code: number, message: string): Response =>
    Response.json({ code, message } satisfies Schemas["Error"], { status: code });
  const running = (id: string): HostedSandbox | undefined => {
    const hosted = deps.sandboxes.get(id);
    return hosted?.running === true ? hosted : undefined;
  };
  // A route on one sandbox: answers 404 unless it is running.
  const onSandbox =
    (handle: (c: Context, hosted: HostedSandbox) => Response | Promise<Response>) =>
    (c: Context): Response | Promise<Response> => {
      const id = c.req.param("sandboxID") ?? "";
      const hosted = running(id);
      return hosted === undefined ? error(404, `sandbox "${id}" doesn't exist`) : handle(c, hosted);
    };
  /** The body's `timeout`, in ms; a 400 when the body has none. */
  const timeoutMsOf = async (c: Context): Promise<number | Response> => {
    const parsed = timeoutSchema.safeParse(await c.req.json().catch(() => undefined));
    return parsed.success
      ? parsed.data.timeout * 1000
      : error(400, `invalid request body: ${parsed.error.message}`);
  };
  const summary = (hosted: HostedSandbox): Schemas["Sandbox"] => ({
    templateID: hosted.templateId,
    sandboxID: hosted.id,
    clientID: hosted.clientId,
    envdVersion: ENVD_VERSION,
    envdAccessToken: hosted.envdAccessToken,
    domain: deps.domain ?? null,
  });
  const listed = (hosted: HostedSandbox): Schemas["ListedSandbox"] => ({
    templateID: hosted.templateId,
    sandboxID: hosted.id,
    clientID: hosted.clientId,
    startedAt: hosted.startedAt.toISOString(),
    endAt: hosted.endAt.toISOString(),
    cpuCount: 2,
    memoryMB: 1024,
    diskSizeMB: 1024,
    metadata: hosted.metadata,
    state: "running",
    envdVersion: ENVD_VERSION,
  });

  app.use(async (c, next) => {
    if (c.req.header("x-api-key") !== deps.apiKey) return error(401, "Invalid API key");
    await next();
  });

  app.post("/v2/sandboxes", async (c) => {
    const fault = deps.faults.takeCreateFailure();
    if (fault !== undefined) {
      const headers =
        fault.retryAfterSeconds === undefined
          ? undefined
          : { "retry-after": String(fault.retryAfterSeconds) };
      return Response.json(
        { code: fault.status, message: fault.message } satisfies Schemas["Error"],
        { status: fault.status, ...(headers ? { headers } : {}) },
      );
    }
    const parsed = newSandboxSchema.safeParse(await c.req.json().catch(() => undefined));
    if (!parsed.success) return error(400, `invalid request body: ${parsed.error.message}`);
    const body = parsed.data;
    const timeoutMs = (body.timeout ?? DEFAULT_TIMEOUT_SECONDS) * 1000;
    let hosted: HostedSandbox;
    try {
      const session = await deps.sandbox.create({
        env: body.envVars ?? {},
        // The session outlives the sandbox a little: the server ends it when the sandbox ends.
        timeoutMs: timeoutMs + 60_000,
      });
      hosted = await hostSandbox({
        templateId: body.templateID,
        timeoutMs,
        metadata: body.metadata ?? {},
        session,
      }).catch(async (error: unknown) => {
        await session.kill().catch(() => undefined);
        throw error;
      });
    } catch (cause) {
      return error(
        500,
        `cannot start the sandbox: ${cause instanceof Error ? cause.message : String(cause)}`,
      );
    }
    deps.sandboxes.set(hosted.id, hosted);
    void hosted.ended.then(() => deps.sandboxes.delete(hosted.id));
    return c.json(summary(hosted), 201);
  });

  app.get("/v2/sandboxes", (c) =>
    c.json([...deps.sandboxes.values()].filter((hosted) => hosted.running).map(listed)),
  );

  app.get(
    "/sandboxes/:sandboxID",
    onSandbox((c, hosted) => {
      const detail: Schemas["SandboxDetail"] = {
        ...listed(hosted),
        envdAccessToken: hosted.envdAccessToken,
        domain: deps.domain ?? null,
      };
      return c.json(detail);
    }),
  );

  app.delete(
    "/sandboxes/:sandboxID",
    onSandbox(async (c, hosted) => {
      await hosted.kill("killed");
      return c.body(null, 204);
    }),
  );

  // Both set the sandbox's lifetime from the body's `timeout`: /timeout to it; /connect extends
  // it, never shortens it, and answers the sandbox.
  app.post(
    "/sandboxes/:sandboxID/:action{timeout|connect}",
    onSandbox(async (c, hosted) => {
      const timeoutMs = await timeoutMsOf(c);
      if (timeoutMs instanceof Response) return timeoutMs;
      if (c.req.param("action") === "timeout") {
        hosted.setTimeout(timeoutMs);
        return c.body(null, 204);
      }
      const remaining = hosted.endAt.getTime() - Date.now();
      hosted.setTimeout(Math.max(remaining, timeoutMs));
      return c.json(summary(hosted), 200);
    }),
  );

  return app;
}
