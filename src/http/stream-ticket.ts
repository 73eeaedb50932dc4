import { z } from "zod";
import { workerConfig } from "../config.ts";
import { ApiError } from "../shared/errors.ts";

// Stream tickets: what a browser on another origin puts in the stream URL (`?ticket=`), since
// EventSource cannot send an Authorization header and reuses its URL on every reconnect.
//
// A ticket is `v1.<payload>.<signature>`, both parts base64url: the payload is JSON
// `{"job", "sub", "exp"}` and the signature is HMAC-SHA256 over `v1.<payload>` with
// STREAM_TICKET_SECRET. It is bound to one job and one user, and works for any number of
// connections until it expires; it is checked when a connection opens, so a stream that is open
// when it expires stays open. Nothing is stored: no lookup, no revocation list.

export interface StreamTicketOptions {
  /** The HMAC key; at least 32 characters (`openssl rand -base64 32`). */
  readonly secret: string;
  /** How long a ticket opens connections for. Default 300 s; 10 s to 3,600 s. */
  readonly ttlSeconds?: number;
}

export interface IssuedStreamTicket {
  readonly ticket: string;
  readonly expiresAt: Date;
}

export interface StreamTicketClaims {
  readonly jobId: string;
  readonly userId: string;
  readonly expiresAt: Date;
}

export interface StreamTickets {
  issue(jobId: string, userId: string, now?: number): Promise<IssuedStreamTicket>;
  /** The ticket's claims if it is ours, unexpired and for `jobId`; otherwise a 401 ApiError with a stable code. */
  verify(ticket: string, jobId: string, now?: number): Promise<StreamTicketClaims>;
}

/**
 * Five minutes: long enough for EventSource's reconnects after a dropped connection (they come
 * seconds apart) and for a person who opens a build as it starts; short enough that a ticket
 * leaked with a URL (a proxy's access log, browser history) is soon useless. A viewer whose
 * ticket has expired asks for a new one and reconnects with `?after=<last event id>`.
 */
export const DEFAULT_TICKET_TTL_SECONDS = 300;
const MIN_TTL_SECONDS = 10;
const MAX_TTL_SECONDS = 3_600;
const MIN_SECRET_LENGTH = 32;
const VERSION = "v1";
// A ticket is a few hundred bytes; anything much longer is not one, and is not worth decoding.
const MAX_TICKET_LENGTH = 2_048;

export type StreamTicketErrorCode =
  | "malformed_ticket"
  | "invalid_ticket"
  | "ticket_expired"
  | "ticket_wrong_job";

function rejected(code: StreamTicketErrorCode, message: string): ApiError {
  return new ApiError(401, code, message);
}

/** Every problem with the options, worded for both the option and its Worker variable. */
export function streamTicketProblems(options: StreamTicketOptions): string[] {
  const ttlSeconds = options.ttlSeconds ?? DEFAULT_TICKET_TTL_SECONDS;
  const problems: string[] = [];
  if (options.secret.length < MIN_SECRET_LENGTH) {
    problems.push(
      `the secret (STREAM_TICKET_SECRET) must be at least ${MIN_SECRET_LENGTH} characters (openssl rand -base64 32)`,
    );
  }
  if (
    !Number.isInteger(ttlSeconds) ||
    ttlSeconds < MIN_TTL_SECONDS ||
    ttlSeconds > MAX_TTL_SECONDS
  ) {
    problems.push(
      `ttlSeconds (STREAM_TICKET_TTL_SECONDS) must be an integer from ${MIN_TTL_SECONDS} to ${MAX_TTL_SECONDS}: ${ttlSeconds}`,
    );
  }
  return problems;
}

/** Checks its options once (throws naming every problem) and returns the issuer and verifier. */
export function streamTickets(options: StreamTicketOptions): StreamTickets {
  const problems = streamTicketProblems(options);
  if (problems.length > 0) throw new Error(`streamTickets: ${problems.join("; ")}`);
  const ttlSeconds = options.ttlSeconds ?? DEFAULT_TICKET_TTL_SECONDS;
  const encoder = new TextEncoder();
  // Imported on first use: importKey is async and a factory is not.
  let key: Promise<CryptoKey> | undefined;
  const hmacKey = (): Promise<CryptoKey> =>
    (key ??= crypto.subtle.importKey(
      "raw",
      encoder.encode(options.secret),
      { name: "HMAC", hash: "SHA-256" },
      false,
      ["sign", "verify"],
    ));

  return {
    async issue(jobId, userId, now = Date.now()) {
      const exp = Math.floor(now / 1000) + ttlSeconds;
      const payload = base64UrlEncode(
        encoder.encode(JSON.stringify({ job: jobId, sub: userId, exp })),
      );
      const signed = `${VERSION}.${payload}`;
      const signature = new Uint8Array(
        await crypto.subtle.sign("HMAC", await hmacKey(), encoder.encode(signed)),
      );
      return { ticket: `${signed}.${base64UrlEncode(signature)}`, expiresAt: new Date(exp * 1000) };
    },

    async verify(ticket, jobId, now = Date.now()) {
      const parts = ticket.length <= MAX_TICKET_LENGTH ? ticket.split(".") : [];
      const [version, payload, signatureText] = parts;
      const signature = signatureText === undefined ? null : base64UrlDecode(signatureText);
      if (
        parts.length !== 3 ||
        version !== VERSION ||
        payload === undefined ||
        payload === "" ||
        signature === null
      ) {
        throw rejected(
          "malformed_ticket",
          "the stream ticket is not one this service issues (v1.<payload>.<signature>)",
        );
      }
      // The signature is checked before the payload is even parsed; crypto.subtle.verify
      // compares in constant time.
      const valid = await crypto.subtle.verify(
        "HMAC",
        await hmacKey(),
        signature,
        encoder.encode(`${version}.${payload}`),
      );
      if (!valid)
        throw rejected(
          "invalid_ticket",
          "the stream ticket's signature does not match: it was altered or signed with another key",
        );
      const claims = parseClaims(payload);
      if (claims === null)
        throw rejected(
          "malformed_ticket",
          "the stream ticket's payload is not one this service issues",
        );
      if (claims.job !== jobId)
        throw rejected("ticket_wrong_job", "the stream ticket is for another job");
      if (claims.exp * 1000 <= now)
        throw rejected(
          "ticket_expired",
          "the stream ticket has expired; ask for a new one (POST .../logs/ticket) and reconnect with ?after=<last event id>",
        );
      return { jobId: claims.job, userId: claims.sub, expiresAt: new Date(claims.exp * 1000) };
    },
  };
}

/**
 * The Worker's stream tickets (STREAM_TICKET_SECRET, STREAM_TICKET_TTL_SECONDS, checked with
 * the rest of its configuration). A Worker without the secret still serves sessions; only
 * ticket requests fail, with a 500 naming the variable.
 */
export function streamTicketsFromEnv(env: Env): StreamTickets {
  const options = workerConfig(env).streamTickets;
  if (options === null)
    throw new Error("streamTickets: STREAM_TICKET_SECRET is not set (openssl rand -base64 32)");
  return streamTickets(options);
}

const ticketPayloadSchema = z.object({
  job: z.string(),
  sub: z.string().min(1),
  exp: z.number().int(),
});
type TicketPayload = z.infer<typeof ticketPayloadSchema>;

function parseClaims(payload: string): TicketPayload | null {
  const bytes = base64UrlDecode(payload);
  if (bytes === null) return null;
  let value: unknown;
  try {
    value = JSON.parse(new TextDecoder("utf-8", { fatal: true, ignoreBOM: false }).decode(bytes));
  } catch {
    return null;
  }
  const parsed = ticketPayloadSchema.safeParse(value);
  return parsed.success ? parsed.data : null;
}

function base64UrlEncode(bytes: Uint8Array): string {
  let binary = "";
  for (const byte of bytes) binary += String.fromCharCode(byte);
  return btoa(binary).replaceAll("+", "-").replaceAll("/", "_").replace(/=+$/, "");
}

const BASE64URL = /^[A-Za-z0-9_-]*$/;

/**
 * Null for anything that is not canonical unpadded base64url: a last character that differs
 * only in its unused bits would otherwise decode to the same bytes, a tampered ticket that passes.
 */
function base64UrlDecode(text: string): Uint8Array | null {
  if (!BASE64URL.test(text) || text.length % 4 === 1) return null;
  const bytes = Uint8Array.from(atob(text.replaceAll("-", "+").replaceAll("_", "/")), (char) =>
    char.charCodeAt(0),
  );
  return base64UrlEncode(bytes) === text ? bytes : null;
}
