import { REDACTED } from "./redacted.ts";

/** Values shorter than this are refused: masking "admin" or "1234" would blank half the log. */
export const MIN_SECRET_LENGTH = 6;

export type AddSecretResult =
  | { readonly added: true }
  | { readonly added: false; readonly reason: string };

/**
 * The exact secret values a job injects into its sandbox, and those a build registers with
 * `::add-mask::`. Every occurrence is masked in the forms a build is likely to print them:
 * as is; JSON-escaped (also with \uXXXX escapes); percent-encoded the way JavaScript, Python
 * and Go do it (either hex case, either space); hex (either case); base64, standard and
 * URL-safe, in all three byte alignments, so a value inside a larger base64 blob (a Basic auth
 * header, a dumped config) is caught too, also when `base64` or MIME wrapped it over lines.
 */
export interface SecretValues {
  /** Registers a value; a value too short to mask safely is refused with the reason. */
  add(value: string): AddSecretResult;
  /** `text` with every registered value, in every encoding, replaced by [REDACTED]. */
  mask(text: string): string;
  /**
   * Where to cut `text` at or before `cut` so that no registered value in any form is split
   * in two (the runner splits an overlong line): `cut` itself when nothing straddles it.
   * A form that only begins before the cut, its end not yet written, counts too.
   */
  safeCut(text: string, cut: number): number;
  readonly size: number;
}

function utf8Base64(bytes: Uint8Array): string {
  let binary = "";
  for (const byte of bytes) binary += String.fromCharCode(byte);
  return btoa(binary);
}

/**
 * The base64 text that encodes `value`'s bytes whatever they are embedded in: with k (0..2)
 * foreign bytes in front, only the characters whose 6 bits all come from the value are fixed.
 */
function base64Forms(bytes: Uint8Array): string[] {
  const forms: string[] = [utf8Base64(bytes)];
  for (let k = 0; k < 3; k++) {
    const padded = new Uint8Array(k + bytes.length);
    padded.set(bytes, k);
    const encoded = utf8Base64(padded);
    const start = Math.ceil((8 * k) / 6);
    const end = Math.floor((8 * (k + bytes.length)) / 6);
    forms.push(encoded.slice(start, end));
  }
  return forms.flatMap((form) => [form, form.replaceAll("+", "-").replaceAll("/", "_")]);
}

const hexByte = (byte: number): string => byte.toString(16).padStart(2, "0");

/** RFC 3986 percent-encoding: every byte outside the unreserved set, %XX. */
function percentEncoded(bytes: Uint8Array, keep: RegExp): string {
  let out = "";
  for (const byte of bytes) {
    const char = String.fromCharCode(byte);
    out += byte < 0x80 && keep.test(char) ? char : `%${hexByte(byte).toUpperCase()}`;
  }
  return out;
}

const UNRESERVED = /[A-Za-z0-9\-._~]/;
// Python's quote() keeps "/" by default.
const UNRESERVED_AND_SLASH = /[A-Za-z0-9\-._~/]/;

function urlForms(value: string, bytes: Uint8Array): string[] {
  const forms = [
    encodeURIComponent(value),
    percentEncoded(bytes, UNRESERVED),
    percentEncoded(bytes, UNRESERVED_AND_SLASH),
  ];
  // Either hex case, and a space as %20 or + (Go's QueryEscape, HTML forms).
  return forms.flatMap((form) => {
    const lower = form.replace(/%[0-9A-F]{2}/g, (sequence) => sequence.toLowerCase());
    return [form, lower].flatMap((cased) => [cased, cased.replace(/%20/g, "+")]);
  });
}

function jsonForms(value: string): string[] {
  const json = JSON.stringify(value).slice(1, -1);
  const unicode = (char: string): string =>
    `\\u${char.charCodeAt(0).toString(16).padStart(4, "0")}`;
  // Python's json.dumps (ensure_ascii) and Go's HTML-safe encoder escape these as \uXXXX.
  const asciiOnly = json.replace(/[^\x20-\x7e]/g, unicode);
  const htmlSafe = asciiOnly.replace(/[<>&']/g, unicode);
  const upperHex = (text: string): string =>
    text.replace(/\\u[0-9a-f]{4}/g, (sequence) => `\\u${sequence.slice(2).toUpperCase()}`);
  return [json, asciiOnly, htmlSafe, upperHex(asciiOnly), upperHex(htmlSafe)];
}

function encodedForms(value: string): string[] {
  const bytes = new TextEncoder().encode(value);
  const hex = Array.from(bytes, hexByte).join("");
  return [
    value,
    ...jsonForms(value),
    ...urlForms(value, bytes),
    hex,
    hex.toUpperCase(),
    ...base64Forms(bytes),
  ];
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\/-]/g, "\\$&");
}

// A wrapped base64 line: `base64` wraps at 76 columns, MIME and PEM at 64 or 76.
const BASE64_LINE = /^\s*[A-Za-z0-9+/=_-]{16,}\s*$/;
// How much of a base64 form one line must share with it to be masked: enough that a chance
// match in unrelated base64 does not happen.
const BASE64_PIECE = 16;

export function createSecretValues(initial: Iterable<string> = []): SecretValues {
  const values = new Set<string>();
  const forms = new Set<string>();
  // Every BASE64_PIECE-character window of every base64 form longer than a wrapped line can
  // hold whole, for the lines of a wrapped blob.
  const base64Windows = new Set<string>();
  let longestForm = 0;
  // One alternation of literals, longest first so the longest form wins at a position. V8
  // compiles it to a single scan with a first-character quick check: one pass per line
  // however many secrets there are, instead of one indexOf pass per form.
  let matcher: RegExp | null = null;

  const addForms = (value: string): void => {
    const bytes = new TextEncoder().encode(value);
    for (const form of encodedForms(value)) {
      if (form.length >= MIN_SECRET_LENGTH) forms.add(form);
    }
    for (const form of base64Forms(bytes)) {
      if (form.length < 2 * BASE64_PIECE) continue;
      for (let i = 0; i + BASE64_PIECE <= form.length; i++) {
        base64Windows.add(form.slice(i, i + BASE64_PIECE));
      }
    }
  };

  // The parts of a wrapped base64 line that belong to a registered value's base64.
  const maskBase64Line = (text: string): string => {
    const covered = new Uint8Array(text.length);
    let any = false;
    for (let i = 0; i + BASE64_PIECE <= text.length; i++) {
      if (!base64Windows.has(text.slice(i, i + BASE64_PIECE))) continue;
      covered.fill(1, i, i + BASE64_PIECE);
      any = true;
    }
    if (!any) return text;
    let out = "";
    for (let i = 0; i < text.length; i++) {
      if (covered[i] === 1) {
        if (i === 0 || covered[i - 1] !== 1) out += REDACTED;
      } else {
        out += text.charAt(i);
      }
    }
    return out;
  };

  const api: SecretValues = {
    add(value) {
      if (value.trim().length < MIN_SECRET_LENGTH) {
        return {
          added: false,
          reason: `a secret value shorter than ${MIN_SECRET_LENGTH} characters is not masked (it would mask ordinary text)`,
        };
      }
      if (values.has(value)) return { added: true };
      values.add(value);
      addForms(value);
      // A multi-line value (a PEM key, a JSON credentials file) reaches the log a line at a time.
      if (value.includes("\n")) {
        for (const line of value.split(/\r?\n/)) {
          const trimmed = line.trim();
          if (trimmed.length >= MIN_SECRET_LENGTH) addForms(trimmed);
        }
      }
      const sorted = [...forms].sort((a, b) => b.length - a.length);
      longestForm = sorted[0]?.length ?? 0;
      matcher = new RegExp(sorted.map(escapeRegExp).join("|"), "g");
      return { added: true };
    },
    mask(text) {
      if (matcher === null) return text;
      const masked = text.replace(matcher, REDACTED);
      return base64Windows.size > 0 && BASE64_LINE.test(masked) ? maskBase64Line(masked) : masked;
    },
    safeCut(text, cut) {
      if (matcher === null || cut <= 0 || cut > text.length) return cut;
      let safe = cut;
      const from = Math.max(0, cut - longestForm);
      const window = text.slice(from, Math.min(text.length, cut + longestForm));
      for (const match of window.matchAll(matcher)) {
        const start = from + match.index;
        if (start < safe && start + match[0].length > safe) safe = start;
      }
      // A form whose beginning is all the text there is so far.
      const tail = text.slice(from);
      for (const form of forms) {
        for (let start = Math.max(0, tail.length - form.length + 1); start < tail.length; start++) {
          if (from + start >= safe) break;
          if (form.startsWith(tail.slice(start))) {
            safe = from + start;
            break;
          }
        }
      }
      // A value that fills the whole piece cannot be kept whole; cut where asked.
      return safe > 0 ? safe : cut;
    },
    get size() {
      return values.size;
    },
  };
  for (const value of initial) api.add(value);
  return api;
}
