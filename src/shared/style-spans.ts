/**
 * Style spans: the colour of a line, kept beside its sanitized plain text (entry format v2).
 * A span names a range of the text's UTF-16 units and how it looks; it never holds text, so
 * redaction, search and the text download see only the plain text, and a viewer builds the
 * coloured line from that text alone.
 *
 *   s, e   the range [s, e) in `text`
 *   c      style tokens, space separated, in this order: b (bold), d (dim), i (italic),
 *          u (underline), v (inverse), x (strikethrough), fg<0..255> or fg#rrggbb,
 *          bg<0..255> or bg#rrggbb ("" when the span is only a link)
 *   h      an http(s) link (OSC 8), only when the sanitizer found nothing to redact in it
 */
export interface StyleSpan {
  readonly s: number;
  readonly e: number;
  readonly c: string;
  readonly h?: string;
}

/** A line keeps at most this many spans; style changes past them are dropped, not the text. */
export const MAX_SPANS_PER_LINE = 64;
export const MAX_LINK_LENGTH = 2048;

const COLOUR = String.raw`(?:\d{1,3}|#[0-9a-f]{6})`;
/** The whole grammar of `c`: anything else is not a span (a reader refuses the line). */
export const STYLE_TOKENS_PATTERN = new RegExp(
  `^(?:b ?)?(?:d ?)?(?:i ?)?(?:u ?)?(?:v ?)?(?:x ?)?(?:fg${COLOUR} ?)?(?:bg${COLOUR})?$`,
);

/** Whether `href` may be a span's link: http(s), no user info, short, already normalised. */
export function isAllowedLink(href: string): boolean {
  if (href.length > MAX_LINK_LENGTH || !URL.canParse(href)) return false;
  const url = new URL(href);
  return (
    (url.protocol === "http:" || url.protocol === "https:") &&
    url.username === "" &&
    url.password === "" &&
    url.href === href
  );
}

function isColourToken(token: string): boolean {
  const value = token.slice(2);
  return value.startsWith("#") || Number(value) <= 255;
}

/** Checks the spans of a line of `length` units: in order, inside it, not overlapping. */
export function isStyleSpanList(value: unknown, length: number): value is StyleSpan[] {
  if (!Array.isArray(value) || value.length > MAX_SPANS_PER_LINE) return false;
  let previousEnd = 0;
  for (const span of value) {
    if (typeof span !== "object" || span === null) return false;
    const { s, e, c, h } = span as Record<string, unknown>;
    if (!Number.isInteger(s) || !Number.isInteger(e) || typeof c !== "string") return false;
    const start = s as number;
    const end = e as number;
    if (start < previousEnd || end <= start || end > length) return false;
    if (c.length > 64 || !STYLE_TOKENS_PATTERN.test(c)) return false;
    if (!c.split(" ").every((token) => !/^[fb]g/.test(token) || isColourToken(token))) return false;
    if (h !== undefined && (typeof h !== "string" || !isAllowedLink(h))) return false;
    if (c === "" && h === undefined) return false;
    previousEnd = end;
  }
  return true;
}
