import { REDACTED } from "./redacted.ts";

/** Values shorter than this are refused: masking "admin" or "1234" would blank half the log. */
export const MIN_SECRET_LENGTH = 6;

export type AddSecretResult =
  | { readonly added: true }
  | { readonly added: false; readonly reason: string };

/**
 * The exact secret values a job injects into its sandbox. Every occurrence is masked in the
 * forms a build is likely to print them: as is, JSON-escaped, URL-encoded, and base64 (standard
 * and URL-safe) in all three byte alignments, so a value inside a larger base64 blob (a Basic
 * auth header, a dumped config) is caught too.
 */
export interface SecretValues {
  /** Registers a value; a value too short to mask safely is refused with the reason. */
  add(value: string): AddSecretResult;
  /** `text` with every registered value, in every encoding, replaced by [REDACTED]. */
  mask(text: string): string;
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
function base64Forms(value: string): string[] {
  const bytes = new TextEncoder().encode(value);
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

function encodedForms(value: string): string[] {
  const json = JSON.stringify(value).slice(1, -1);
  const url = encodeURIComponent(value);
  return [value, json, url, url.replaceAll("%20", "+"), ...base64Forms(value)];
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\/-]/g, "\\$&");
}

export function createSecretValues(initial: Iterable<string> = []): SecretValues {
  const values = new Set<string>();
  const forms = new Set<string>();
  // One alternation of literals, longest first so the longest form wins at a position. V8
  // compiles it to a single scan with a first-character quick check: one pass per line
  // however many secrets there are, instead of one indexOf pass per form.
  let matcher: RegExp | null = null;

  const addForms = (value: string): void => {
    for (const form of encodedForms(value)) {
      if (form.length >= MIN_SECRET_LENGTH) forms.add(form);
    }
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
      matcher = new RegExp(sorted.map(escapeRegExp).join("|"), "g");
      return { added: true };
    },
    mask(text) {
      return matcher === null ? text : text.replace(matcher, REDACTED);
    },
    get size() {
      return values.size;
    },
  };
  for (const value of initial) api.add(value);
  return api;
}
