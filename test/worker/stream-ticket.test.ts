import { createExecutionContext } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { DEFAULT_TICKET_TTL_SECONDS, streamTickets } from "../../src/http/stream-ticket.ts";
import worker from "../../src/index.ts";
import { createJob, jobWithLog, testRedis } from "../support/jobs.ts";
import { uniqueJobId } from "../support/redis.ts";
import { isEvent, sseReader, textsOf } from "../support/sse.ts";
import { base64UrlText, testUserId } from "../support/tokens.ts";
import { bearer, call, testUser, WORKER_ORIGIN } from "../support/worker-client.ts";

// Stream tickets and CORS: what a page on another origin needs to follow a build with
// EventSource, which can send neither an Authorization header nor (usually) the cookie.
const redis = testRedis(env);
const ALLOWED_ORIGIN = "https://app.example.com";
const owner = testUser();
const stranger = testUser();

const newJob = (label: string) => jobWithLog(redis, label, owner.id);

interface TicketBody {
  ticket: string;
  expires_at: string;
}

async function ticketFor(jobId: string): Promise<TicketBody> {
  const response = await call(`/api/jobs/${jobId}/logs/ticket`, {
    method: "POST",
    headers: bearer(await owner.token()),
  });
  expect(response.status).toBe(200);
  return (await response.json()) as TicketBody;
}

const streamUrl = (jobId: string, ticket: string): string =>
  `/api/jobs/${jobId}/logs/stream?ticket=${encodeURIComponent(ticket)}`;

async function expectRejected(response: Response, code: string): Promise<void> {
  expect({ status: response.status, body: await response.json() }).toMatchObject({
    status: 401,
    body: { error: { code } },
  });
}

describe("streamTickets()", () => {
  const secret = "s".repeat(32);

  it("refuses a short secret and an out-of-range TTL when created, naming both", () => {
    expect(() => streamTickets({ secret: "short", ttlSeconds: 5 })).toThrow(
      /STREAM_TICKET_SECRET.*32.*STREAM_TICKET_TTL_SECONDS/,
    );
    expect(() => streamTickets({ secret, ttlSeconds: 86_400 })).toThrow(
      /STREAM_TICKET_TTL_SECONDS/,
    );
  });

  it("issues v1.<payload>.<signature> tickets that expire after the TTL", async () => {
    const tickets = streamTickets({ secret, ttlSeconds: 60 });
    const now = Date.UTC(2026, 10, 21, 12, 0, 0);
    const issued = await tickets.issue("job-a", "user_a", now);
    expect(issued.ticket).toMatch(/^v1\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]{43}$/);
    expect(issued.expiresAt.getTime()).toBe(now + 60_000);
    await expect(tickets.verify(issued.ticket, "job-a", now + 59_000)).resolves.toEqual({
      jobId: "job-a",
      userId: "user_a",
      expiresAt: issued.expiresAt,
    });
    await expect(tickets.verify(issued.ticket, "job-a", now + 60_000)).rejects.toMatchObject({
      status: 401,
      code: "ticket_expired",
    });
  });

  it("defaults to five minutes", async () => {
    const now = Date.now();
    const issued = await streamTickets({ secret }).issue("job-a", "user_a", now);
    expect(issued.expiresAt.getTime()).toBe(
      (Math.floor(now / 1000) + DEFAULT_TICKET_TTL_SECONDS) * 1000,
    );
  });

  it("rejects a ticket signed with another secret", async () => {
    const other = await streamTickets({ secret: "t".repeat(32) }).issue("job-a", "user_a");
    await expect(streamTickets({ secret }).verify(other.ticket, "job-a")).rejects.toMatchObject({
      status: 401,
      code: "invalid_ticket",
    });
  });
});

describe("POST /api/jobs/:id/logs/ticket", () => {
  it("gives the owner a ticket for the job's stream, valid for five minutes, not to be cached", async () => {
    const { jobId } = await newJob("ticket");
    const before = Date.now();
    const response = await call(`/api/jobs/${jobId}/logs/ticket`, {
      method: "POST",
      headers: bearer(await owner.token()),
    });
    expect(response.status).toBe(200);
    expect(response.headers.get("Cache-Control")).toBe("no-store");
    const body = (await response.json()) as TicketBody;
    const after = Date.now();
    expect(body.ticket).toMatch(/^v1\./);
    // Five minutes from when the Worker made it, some time between before and after (workerd's
    // clock moves on with I/O: on a slow machine the two differ by milliseconds).
    const expiresAt = Date.parse(body.expires_at);
    expect(expiresAt - before).toBeGreaterThan(290_000);
    expect(expiresAt - after).toBeLessThanOrEqual(300_000);
  });

  it("answers anyone but the owner as for a job that does not exist", async () => {
    const { jobId } = await newJob("ticket-stranger");
    const notYours = await call(`/api/jobs/${jobId}/logs/ticket`, {
      method: "POST",
      headers: bearer(await stranger.token()),
    });
    const missing = await call(`/api/jobs/${uniqueJobId("nowhere")}/logs/ticket`, {
      method: "POST",
      headers: bearer(await owner.token()),
    });
    expect(notYours.status).toBe(404);
    expect(await notYours.json()).toEqual(await missing.json());
  });

  it("needs a session: 401 without one, and a ticket is not one", async () => {
    const { jobId } = await newJob("ticket-anon");
    await expectRejected(
      await call(`/api/jobs/${jobId}/logs/ticket`, { method: "POST" }),
      "unauthenticated",
    );
    const { ticket } = await ticketFor(jobId);
    await expectRejected(
      await call(`/api/jobs/${jobId}/logs/ticket?ticket=${ticket}`, { method: "POST" }),
      "unauthenticated",
    );
  });

  it("rejects a malformed job id with 400", async () => {
    const response = await call("/api/jobs/bad*id/logs/ticket", {
      method: "POST",
      headers: bearer(await owner.token()),
    });
    expect(response.status).toBe(400);
    expect(await response.json()).toMatchObject({ error: { code: "invalid_job_id" } });
  });
});

describe("GET /api/jobs/:id/logs/stream?ticket=", () => {
  it("streams with the ticket alone: no Authorization header, no cookie", async () => {
    const { jobId, writer } = await newJob("ticket-stream");
    const { ticket } = await ticketFor(jobId);
    const response = await call(streamUrl(jobId, ticket));
    expect(response.status).toBe(200);
    expect(response.headers.get("Content-Type")).toMatch(/^text\/event-stream/);
    const stream = sseReader(response);
    await stream.next();
    await writer.append("with a ticket");
    expect(textsOf(await stream.nextMatching(isEvent))).toEqual(["with a ticket"]);
    await stream.cancel();
  });

  it("takes the same ticket again on a reconnect and resumes after Last-Event-ID", async () => {
    const { jobId, writer } = await newJob("ticket-resume");
    const { ticket } = await ticketFor(jobId);
    const first = sseReader(await call(streamUrl(jobId, ticket)));
    await first.next();
    await writer.append("a1", "a2");
    const seen = await first.nextMatching(isEvent);
    expect(textsOf(seen)).toEqual(["a1", "a2"]);
    await first.cancel();
    await writer.append("b1");
    await writer.append("b2", "b3");
    // What EventSource does after a drop: the same URL, with the last id it saw.
    const again = await call(streamUrl(jobId, ticket), {
      headers: { "Last-Event-ID": seen?.id ?? "" },
    });
    expect(again.status).toBe(200);
    const resumed = sseReader(again);
    const texts: string[] = [];
    while (texts.length < 3) texts.push(...textsOf(await resumed.nextMatching(isEvent)));
    expect(texts).toEqual(["b1", "b2", "b3"]);
    await resumed.cancel();
  });

  it("rejects a ticket for another job, even one the same user owns", async () => {
    const { jobId } = await newJob("ticket-mine");
    const { jobId: otherJobId } = await newJob("ticket-other");
    const { ticket } = await ticketFor(otherJobId);
    await expectRejected(await call(streamUrl(jobId, ticket)), "ticket_wrong_job");
  });

  it("rejects a tampered ticket", async () => {
    const { jobId } = await newJob("ticket-tampered");
    const { ticket } = await ticketFor(jobId);
    const [version, , signature] = ticket.split(".");
    // Another user's id in the payload, the original signature kept.
    const forged = `${version}.${base64UrlText(JSON.stringify({ job: jobId, sub: testUserId(), exp: Math.floor(Date.now() / 1000) + 300 }))}.${signature}`;
    await expectRejected(await call(streamUrl(jobId, forged)), "invalid_ticket");
    // A later expiry, same signature.
    const longer = `${version}.${base64UrlText(JSON.stringify({ job: jobId, sub: owner.id, exp: Math.floor(Date.now() / 1000) + 86_400 }))}.${signature}`;
    await expectRejected(await call(streamUrl(jobId, longer)), "invalid_ticket");
    // One character of the signature changed.
    const flipped = `${ticket.slice(0, -10)}${ticket.at(-10) === "A" ? "B" : "A"}${ticket.slice(-9)}`;
    await expectRejected(await call(streamUrl(jobId, flipped)), "invalid_ticket");
  });

  it("rejects an expired ticket", async () => {
    const { jobId } = await newJob("ticket-expired");
    const tickets = streamTickets({ secret: env.STREAM_TICKET_SECRET });
    const { ticket } = await tickets.issue(
      jobId,
      owner.id,
      Date.now() - (DEFAULT_TICKET_TTL_SECONDS + 1) * 1000,
    );
    await expectRejected(await call(streamUrl(jobId, ticket)), "ticket_expired");
  });

  it.each([
    ["empty", ""],
    ["not a ticket", "hello"],
    ["two parts", "v1.abc"],
    ["another version", "v2.eyJ9.AAAA"],
    ["an empty payload", "v1..AAAA"],
    ["not base64url", "v1.e30.%2B%2F%3D"],
    ["a non-canonical signature", `v1.e30.${"A".repeat(42)}B`],
    ["far too long", `v1.${"A".repeat(4_000)}.AAAA`],
  ])("rejects a malformed ticket (%s)", async (_case, ticket) => {
    const { jobId } = await newJob("ticket-malformed");
    const response = await call(`/api/jobs/${jobId}/logs/stream?ticket=${ticket}`);
    await expectRejected(response, "malformed_ticket");
  });

  it("re-checks ownership: a ticket stops working for a job that is no longer the user's", async () => {
    const { jobId } = await newJob("ticket-owner-changed");
    const { ticket } = await ticketFor(jobId);
    await createJob(redis, jobId, testUserId());
    const response = await call(streamUrl(jobId, ticket));
    expect(response.status).toBe(404);
    expect(await response.json()).toMatchObject({ error: { code: "job_not_found" } });
  });

  it("opens the stream and nothing else: history and download still need a session", async () => {
    const { jobId } = await newJob("ticket-scope");
    const { ticket } = await ticketFor(jobId);
    for (const path of [
      `/api/jobs/${jobId}?ticket=${ticket}`,
      `/api/jobs/${jobId}/logs?ticket=${ticket}`,
      `/api/jobs/${jobId}/logs.txt?ticket=${ticket}`,
    ]) {
      await expectRejected(await call(path), "unauthenticated");
    }
  });
});

describe("the stream with Clerk's same-origin __session cookie", () => {
  it("streams to a plain EventSource request that carries only the cookie", async () => {
    const { jobId, writer } = await newJob("cookie");
    const response = await call(`/api/jobs/${jobId}/logs/stream`, {
      headers: { Cookie: `__session=${await owner.token()}` },
    });
    expect(response.status).toBe(200);
    const stream = sseReader(response);
    await stream.next();
    await writer.append("with the cookie");
    expect(textsOf(await stream.nextMatching(isEvent))).toEqual(["with the cookie"]);
    await stream.cancel();
  });

  it("answers a stranger's cookie with 404", async () => {
    const { jobId } = await newJob("cookie-stranger");
    const response = await call(`/api/jobs/${jobId}/logs/stream`, {
      headers: { Cookie: `__session=${await stranger.token()}` },
    });
    expect(response.status).toBe(404);
  });
});

describe("CORS on /api/*", () => {
  const corsHeaders = (response: Response): string[] =>
    [...response.headers.keys()].filter((name) => name.startsWith("access-control-"));

  it("lets a configured origin read answers, with credentials", async () => {
    const { jobId } = await newJob("cors");
    const response = await call(`/api/jobs/${jobId}`, {
      headers: bearer(await owner.token(), { Origin: ALLOWED_ORIGIN }),
    });
    expect(response.status).toBe(200);
    expect(response.headers.get("Access-Control-Allow-Origin")).toBe(ALLOWED_ORIGIN);
    expect(response.headers.get("Access-Control-Allow-Credentials")).toBe("true");
    expect(response.headers.get("Vary")).toMatch(/\bOrigin\b/);
  });

  it("lets it read errors too, so its page can tell why", async () => {
    const response = await call(`/api/jobs/${uniqueJobId("cors-error")}`, {
      headers: { Origin: ALLOWED_ORIGIN },
    });
    expect(response.status).toBe(401);
    expect(response.headers.get("Access-Control-Allow-Origin")).toBe(ALLOWED_ORIGIN);
    expect(response.headers.get("Access-Control-Expose-Headers")).toMatch(/WWW-Authenticate/);
  });

  it("lets it open the stream with a ticket", async () => {
    const { jobId } = await newJob("cors-stream");
    const { ticket } = await ticketFor(jobId);
    const response = await call(streamUrl(jobId, ticket), { headers: { Origin: ALLOWED_ORIGIN } });
    expect(response.status).toBe(200);
    expect(response.headers.get("Access-Control-Allow-Origin")).toBe(ALLOWED_ORIGIN);
    expect(response.headers.get("Access-Control-Allow-Credentials")).toBe("true");
    await sseReader(response).cancel();
  });

  it.each([
    "https://evil.example.com",
    "https://app.example.com.evil.example",
    "http://app.example.com",
    "null",
  ])("gives the origin %s no CORS header at all", async (origin) => {
    const { jobId } = await newJob("cors-other");
    const response = await call(`/api/jobs/${jobId}`, {
      headers: bearer(await owner.token(), { Origin: origin }),
    });
    expect(response.status).toBe(200);
    expect(corsHeaders(response)).toEqual([]);
    expect(response.headers.get("Vary")).toMatch(/\bOrigin\b/);
  });

  it("answers a configured origin's preflight: the ticket POST and a reconnect's Last-Event-ID", async () => {
    const preflight = await call("/api/jobs/some-job/logs/ticket", {
      method: "OPTIONS",
      headers: {
        Origin: ALLOWED_ORIGIN,
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization",
      },
    });
    expect(preflight.status).toBe(204);
    expect(preflight.headers.get("Access-Control-Allow-Origin")).toBe(ALLOWED_ORIGIN);
    expect(preflight.headers.get("Access-Control-Allow-Credentials")).toBe("true");
    expect(preflight.headers.get("Access-Control-Allow-Methods")?.split(",")).toEqual(
      expect.arrayContaining(["GET", "POST"]),
    );
    expect(preflight.headers.get("Access-Control-Allow-Headers")?.split(",")).toEqual(
      expect.arrayContaining(["Authorization", "Last-Event-ID"]),
    );
    expect(preflight.headers.get("Access-Control-Max-Age")).toBe("600");
  });

  it("answers another origin's preflight without any CORS header, and without reaching auth", async () => {
    const preflight = await call("/api/jobs/some-job/logs/stream", {
      method: "OPTIONS",
      headers: {
        Origin: "https://evil.example.com",
        "Access-Control-Request-Method": "GET",
        "Access-Control-Request-Headers": "last-event-id",
      },
    });
    expect(preflight.status).toBe(204);
    expect(corsHeaders(preflight)).toEqual([]);
  });

  it("adds nothing outside /api", async () => {
    for (const path of ["/healthz", "/jobs/some-job"]) {
      const response = await call(path, { headers: { Origin: ALLOWED_ORIGIN } });
      expect(corsHeaders(response)).toEqual([]);
    }
  });

  it.each(["*", "https://app.example.com/", "app.example.com"])(
    "fails loudly, never wider, on CORS_ORIGINS=%j",
    async (origins) => {
      // A cast: the generated Env types CORS_ORIGINS as wrangler.toml's literal value.
      const misconfigured = { ...env, CORS_ORIGINS: origins } as Env;
      const response = await worker.fetch(
        new Request(`${WORKER_ORIGIN}/api/jobs/x`, { headers: { Origin: ALLOWED_ORIGIN } }),
        misconfigured,
        createExecutionContext(),
      );
      expect(response.status).toBe(500);
      expect(response.headers.get("Access-Control-Allow-Origin")).toBeNull();
    },
  );
});
