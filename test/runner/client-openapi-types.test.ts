import { describe, expect, it } from "vitest";
import type { JobListPage } from "../../src/client/client.ts";
import type { components, paths } from "../../src/client/generated/openapi.ts";
import type {
  CreatedJob,
  ErrorBody,
  HistoryPage,
  JobRecord,
  JobSpecInput,
  LogLine,
  StreamEventMap,
  StreamTicket,
} from "../../src/client/types.ts";
import type { ErrorCode } from "../../src/shared/errors.ts";

// The client's hand-written types against the ones openapi-typescript generates from the API's
// document (src/client/generated/, which test/worker/openapi.test.ts keeps equal to what the
// Worker serves): `npm run typecheck` fails here when the client and the API drift apart.
type Schemas = components["schemas"];
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
/** What the server sends fits the client's type (the client may be looser, not narrower). */
type Accepts<Client, Server> = [Server] extends [Client] ? true : false;

const checks = {
  job: true satisfies Same<JobRecord, Schemas["Job"]>,
  line: true satisfies Same<LogLine, Schemas["LogLine"]>,
  page: true satisfies Same<HistoryPage, Schemas["HistoryPage"]>,
  list: true satisfies Same<JobListPage, Schemas["JobList"]>,
  ticket: true satisfies Same<StreamTicket, Schemas["StreamTicket"]>,
  created: true satisfies Accepts<CreatedJob, Schemas["CreatedJob"]>,
  error: true satisfies Accepts<ErrorBody, Schemas["Error"]>,
  codes: true satisfies Same<ErrorCode, Schemas["Error"]["error"]["code"]>,
  logEvent: true satisfies Same<StreamEventMap["log"], Schemas["LogEvent"]["data"]>,
  doneEvent: true satisfies Same<StreamEventMap["done"], Schemas["DoneEvent"]["data"]>,
  // What the client sends is what the document says the route takes.
  spec: true satisfies Same<
    JobSpecInput,
    NonNullable<paths["/api/jobs"]["post"]["requestBody"]>["content"]["application/json"]
  >,
};

describe("the client's types", () => {
  it("are the API document's", () => {
    expect(Object.values(checks).every(Boolean)).toBe(true);
  });
});
