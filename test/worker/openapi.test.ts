import { env } from "cloudflare:workers";
import { Validator } from "@cfworker/json-schema";
import { beforeAll, describe, expect, it } from "vitest";
import { app } from "../../src/app.ts";
import { UNDOCUMENTED_PATHS } from "../../src/http/openapi.ts";
import { ERROR_CODES } from "../../src/shared/errors.ts";
import { jobWithLog, testRedis } from "../support/jobs.ts";
import { uniqueJobId } from "../support/redis.ts";
import { isEvent, type SseFrame, sseReader } from "../support/sse.ts";
import { call, testUser } from "../support/worker-client.ts";

// GET /api/openapi.json against the app it describes: every route of the Hono app is in the
// document and nothing else is, every error code is in its error body, and real answers of the
// routes match the document's schemas (checked by @cfworker/json-schema, a JSON Schema 2020-12
// validator that needs no eval, so it runs here in workerd).

type Schema = Record<string, unknown>;
interface Operation {
  summary?: string;
  responses: Record<
    string,
    { description?: string; content?: Record<string, { schema?: Schema }> }
  >;
}
interface OpenApiDocument {
  openapi: string;
  paths: Record<string, Record<string, Operation>>;
  components: { schemas: Record<string, Schema> };
}

const redis = testRedis(env);
let document: OpenApiDocument;

beforeAll(async () => {
  const response = await call("/api/openapi.json");
  expect(response.status).toBe(200);
  document = (await response.json()) as OpenApiDocument;
});

/** `/api/jobs/:id/logs` as OpenAPI writes it: `/api/jobs/{id}/logs`. */
const openApiPath = (path: string): string => path.replace(/:([A-Za-z0-9_]+)/g, "{$1}");

function appOperations(): string[] {
  const operations = app.routes
    // `ALL` entries are middleware (app.use), not routes.
    .filter((route) => route.method !== "ALL")
    .map((route) => ({ method: route.method.toLowerCase(), path: openApiPath(route.path) }))
    .filter(({ path }) => !UNDOCUMENTED_PATHS.some((pattern) => pattern.test(path)))
    .map(({ method, path }) => `${method} ${path}`);
  return [...new Set(operations)].sort();
}

function documentOperations(): string[] {
  return Object.entries(document.paths)
    .flatMap(([path, item]) => Object.keys(item).map((method) => `${method} ${path}`))
    .sort();
}

/** The document's schema for `status` of `method path`, its refs made resolvable. */
function responseSchema(
  method: string,
  path: string,
  status: number,
  media = "application/json",
): Schema {
  const schema =
    document.paths[path]?.[method]?.responses[String(status)]?.content?.[media]?.schema;
  if (schema === undefined)
    throw new Error(`the document has no ${status} ${media} for ${method} ${path}`);
  // OpenAPI's refs point into components/schemas; JSON Schema resolves them within the schema
  // itself, so the components come along as $defs.
  const text = JSON.stringify({ ...schema, $defs: document.components.schemas });
  return JSON.parse(text.replaceAll('"#/components/schemas/', '"#/$defs/')) as Schema;
}

function expectValid(value: unknown, schema: Schema): void {
  const result = new Validator(schema, "2020-12", false).validate(value);
  expect(result.errors, JSON.stringify(value)).toEqual([]);
}

describe("the OpenAPI document", () => {
  it("is OpenAPI 3.1, served without auth", () => {
    expect(document.openapi).toBe("3.1.0");
  });

  it("is the copy the client's types are generated from (npx vitest run -u writes it)", async () => {
    // src/client/generated/openapi.ts comes from this file (npm run types:client), and
    // test/runner/client-types.test.ts holds the client's own types to it.
    await expect(`${JSON.stringify(document, null, 2)}\n`).toMatchFileSnapshot(
      "../../src/client/generated/openapi.json",
    );
  });

  it("describes every route of the app, and no route the app does not have", () => {
    const inApp = appOperations();
    expect(inApp).toContain("post /api/jobs/{id}/cancel");
    expect(inApp).toContain("get /api/jobs/{id}/logs/search");
    expect(documentOperations()).toEqual(inApp);
  });

  it("gives every operation a summary, a success answer and our error body", () => {
    for (const [path, item] of Object.entries(document.paths))
      for (const [method, operation] of Object.entries(item)) {
        const where = `${method} ${path}`;
        expect(operation.summary, where).toBeTruthy();
        const statuses = Object.keys(operation.responses);
        expect(
          statuses.some((status) => status.startsWith("2")),
          where,
        ).toBe(true);
        for (const status of statuses.filter((status) => /^[45]/.test(status)))
          expect(operation.responses[status]?.content?.["application/json"]?.schema, where).toEqual(
            { $ref: "#/components/schemas/Error" },
          );
      }
  });

  it("has every ErrorCode in the error body's code enum", () => {
    const error = document.components.schemas.Error as {
      properties: { error: { properties: { code: { enum: string[] } } } };
    };
    expect([...error.properties.error.properties.code.enum].sort()).toEqual(
      [...ERROR_CODES].sort(),
    );
  });

  it("has schemas that refuse what the API never answers", () => {
    const page = responseSchema("get", "/api/jobs/{id}/logs", 200);
    const line = { ts: "2026-11-21T12:00:00.000Z", source: "stdout", phase: "build", text: "hi" };
    const cursors = { before: null, after: null };
    expectValid({ lines: [{ ...line, cursor: "1-0:0" }], has_more: false, cursors }, page);
    const invalid = (value: unknown, schema: Schema): boolean =>
      !new Validator(schema, "2020-12").validate(value).valid;
    expect(invalid({ lines: [line], has_more: false, cursors }, page)).toBe(true);
    expect(
      invalid(
        { error: { code: "no_such_code", message: "" } },
        responseSchema("get", "/api/jobs/{id}", 404),
      ),
    ).toBe(true);
  });

  it("takes the parameters from the routes' validators", () => {
    const history = document.paths["/api/jobs/{id}/logs"]?.get as unknown as {
      parameters: { in: string; name: string }[];
    };
    expect(
      history.parameters.map((parameter) => `${parameter.in} ${parameter.name}`).sort(),
    ).toEqual(["path id", "query after", "query before", "query limit", "query line"]);
    const stream = document.paths["/api/jobs/{id}/logs/stream"]?.get as unknown as {
      parameters: { in: string; name: string }[];
    };
    expect(stream.parameters.map((parameter) => `${parameter.in} ${parameter.name}`)).toContain(
      "header Last-Event-ID",
    );
  });
});

describe("real answers match the document", () => {
  it("201 of a created job", async () => {
    const response = await testUser().post("/api/jobs", {
      title: "Deploy",
      steps: [{ name: "Build", phase: "build", command: "true" }],
    });
    expect(response.status).toBe(201);
    expectValid(await response.json(), responseSchema("post", "/api/jobs", 201));
  });

  it("200 of a history page, the job's record, the job list and a search", async () => {
    const user = testUser();
    const { jobId, writer } = await jobWithLog(redis, "openapi-page", user.id);
    await writer.append("installing", "\u001b[31merror\u001b[0m: it broke");
    await writer.appendLines([{ text: "--- Building ---", source: "system" }]);

    const page = await user.get(`/api/jobs/${jobId}/logs?limit=2`);
    expect(page.status).toBe(200);
    const body = (await page.json()) as { lines: unknown[] };
    expect(body.lines).toHaveLength(2);
    expectValid(body, responseSchema("get", "/api/jobs/{id}/logs", 200));

    const job = await user.get(`/api/jobs/${jobId}`);
    expectValid(await job.json(), responseSchema("get", "/api/jobs/{id}", 200));
    const list = await user.get("/api/jobs");
    expectValid(await list.json(), responseSchema("get", "/api/jobs", 200));
    const search = await user.get(`/api/jobs/${jobId}/logs/search?q=broke`);
    expectValid(await search.json(), responseSchema("get", "/api/jobs/{id}/logs/search", 200));
  });

  it("400 and 404 errors", async () => {
    const user = testUser();
    const { jobId } = await jobWithLog(redis, "openapi-errors", user.id);
    const badCursor = await user.get(`/api/jobs/${jobId}/logs?after=zzz`);
    expect(badCursor.status).toBe(400);
    const bad = (await badCursor.json()) as { error: { code: string } };
    expect(bad.error.code).toBe("invalid_cursor");
    expectValid(bad, responseSchema("get", "/api/jobs/{id}/logs", 400));

    const missing = await user.get(`/api/jobs/${uniqueJobId("openapi-missing")}`);
    expect(missing.status).toBe(404);
    expectValid(await missing.json(), responseSchema("get", "/api/jobs/{id}", 404));
  });

  it("the stream's log and done events", async () => {
    const user = testUser();
    const { jobId, writer } = await jobWithLog(redis, "openapi-stream", user.id, "ready");
    await writer.append("one", "two");
    await writer.end("ready", "Build succeeded");
    const response = await user.stream(jobId, { after: "0-0:0" });
    expect(response.status).toBe(200);
    const reader = sseReader(response);
    const events: SseFrame[] = [];
    for (let frame = await reader.next(); frame !== null; frame = await reader.next())
      if (isEvent(frame)) events.push(frame);
    expect(events.map((event) => event.event)).toEqual(["log", "log", "done"]);
    const schema = responseSchema("get", "/api/jobs/{id}/logs/stream", 200, "text/event-stream");
    for (const event of events)
      expectValid(
        {
          event: event.event,
          ...(event.id === undefined ? {} : { id: event.id }),
          data: JSON.parse(event.data ?? ""),
        },
        schema,
      );
  });
});
