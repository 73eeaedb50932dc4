const OK = Buffer.from("OK");
const INTEGER = /^-?\d+$/;

/**
 * The JSON text of one command's result, as Upstash writes it.
 *
 * `reply` is what the executor returns: Buffer for bulk and status strings, a digit string for
 * an integer, null, an Error nested in an array (script replies), or an array of these.
 * With `base64`, every string at every depth is base64 of its raw bytes except a top-level "OK"
 * (the only case @upstash/redis's decode leaves alone); without it, strings are UTF-8 text.
 * Integers are written from their digits, so values beyond 2^53 are not rounded here.
 */
export function encodeResult(reply: unknown, base64: boolean): string {
  return encode(reply, base64, true);
}

function encode(reply: unknown, base64: boolean, topLevel: boolean): string {
  if (reply === null || reply === undefined) return "null";
  if (Buffer.isBuffer(reply)) {
    if (!base64) return JSON.stringify(reply.toString("utf8"));
    // ioredis hands status and bulk strings over alike, so a top-level bulk "OK" is sent raw too;
    // the client decodes both forms to "OK".
    if (topLevel && reply.equals(OK)) return '"OK"';
    return `"${reply.toString("base64")}"`;
  }
  if (typeof reply === "string") {
    if (INTEGER.test(reply)) return reply;
    return encode(Buffer.from(reply), base64, topLevel);
  }
  if (typeof reply === "number") return Number.isFinite(reply) ? String(reply) : "null";
  if (Array.isArray(reply)) {
    return `[${reply.map((item: unknown) => encode(item, base64, false)).join(",")}]`;
  }
  if (reply instanceof Error) return encode(Buffer.from(reply.message), base64, false);
  return encode(Buffer.from(String(reply)), base64, topLevel);
}
