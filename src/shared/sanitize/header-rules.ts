import { REDACTED } from "./redacted.ts";
import { indexFrom, regexRule, type SecretPattern } from "./secret-pattern.ts";
import { DIGIT, isNotSecretValue } from "./value-shapes.ts";

// Where a header's value begins: the name, a separator, and the quote it may be in.
const AUTHORIZATION_START =
  /(?<![A-Za-z0-9_-])((?:proxy-)?authorization)(\\?["'\x60]?[ \t]{0,8}[:=][ \t]{0,8})(\\?["'\x60])?/gi;
// A scheme word (Bearer, Basic, Token, Api-Token, Digest, SSWS, Klaviyo-API-Key, FlyV1,
// AWS4-HMAC-SHA256): letters and hyphens, a version digit at most, unlike a credential.
const SCHEME = /^(?:[A-Za-z][A-Za-z-]{1,40}\d?|aws4-hmac-sha256|hmac-sha256)$/i;
// Parameters (Digest username="x", Token token="x", SigV4 Credential=...): all of them go. A
// name has no digits, which tells it from base64 ending in "=".
const PARAMETERS = /^[A-Za-z][A-Za-z_-]{0,30}=[^\s=]/;
const WORD_END = /[\s,;"'\x60\\]/g;
const VALUE_END = /["'\x60\\]/g;

/**
 * Authorization: <scheme> <credential>: whatever the scheme, the scheme word stays and the
 * credential goes, to the end of the value when it is parameters. A value of one word is
 * the credential. Parsed by hand from each header name on, so every character is read once.
 */
function redactAuthorization(line: string): string {
  let out = "";
  let copied = 0;
  AUTHORIZATION_START.lastIndex = 0;
  for (let start = AUTHORIZATION_START.exec(line); start; start = AUTHORIZATION_START.exec(line)) {
    const valueStart = start.index + start[0].length;
    const quoted = start[3] !== undefined;
    const valueEnd = quoted ? indexFrom(VALUE_END, line, valueStart) : line.length;
    const firstEnd = Math.min(indexFrom(WORD_END, line, valueStart), valueEnd);
    const first = line.slice(valueStart, firstEnd);
    let credentialStart = valueStart;
    let rest = line.slice(firstEnd, valueEnd);
    const gap = /^[ \t]{1,8}/.exec(rest)?.[0] ?? "";
    if (SCHEME.test(first) && gap !== "" && rest.length > gap.length) {
      credentialStart = firstEnd + gap.length;
      rest = line.slice(credentialStart, valueEnd);
    }
    const credentialEnd = PARAMETERS.test(rest)
      ? quoted
        ? valueEnd
        : line.length
      : Math.min(indexFrom(WORD_END, line, credentialStart), valueEnd);
    const credential = line.slice(credentialStart, credentialEnd);
    AUTHORIZATION_START.lastIndex = Math.max(credentialEnd, valueStart);
    if (credential === "" || isNotSecretValue(credential.trim())) continue;
    out += line.slice(copied, credentialStart) + REDACTED;
    copied = credentialEnd;
  }
  return copied === 0 ? line : out + line.slice(copied);
}

export const AUTHORIZATION_HEADER: SecretPattern = {
  id: "authorization-header",
  keywords: ["authorization"],
  redact: redactAuthorization,
};

// token68 syntax: '=' only as trailing padding, so "bearer expires_in=3600" is not a token.
// Prose ("Bearer authentication") has no digits; a real token of 20+ characters nearly always does.
export const BEARER_TOKEN = regexRule(
  "bearer-token",
  ["bearer"],
  /(?<![A-Za-z0-9_-])(bearer|Bearer|BEARER)([ \t]{1,8})([A-Za-z0-9._~+/-]{8,}=*)(?![A-Za-z0-9._~+/=-])/g,
  (match, word = "", space = "", value = "") =>
    isNotSecretValue(value) || (!DIGIT.test(value) && value.length < 20)
      ? match
      : `${word}${space}${REDACTED}`,
);

// RFC 6265 cookie names are tokens; `cookie: (c: Context) => string` is code, not a header.
const COOKIE_NAME = /^\s*[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;

// Cookie: every pair's value; Set-Cookie: the first pair's (the rest are attributes).
// split() rather than a regex over the pairs, which would rescan a long run without "=".
export const COOKIE_HEADER = regexRule(
  "cookie-header",
  ["cookie"],
  /(?<![A-Za-z0-9_.-])((?:set-)?cookie)([ \t]{0,8}:[ \t]{0,8})([^"'`\\]+)/gi,
  (_match, name = "", separator = "", value = "") => {
    const pairs = value.split(";");
    const count = name.toLowerCase() === "set-cookie" ? 1 : pairs.length;
    for (let i = 0; i < count; i++) {
      const pair = pairs[i] ?? "";
      const equals = pair.indexOf("=");
      if (equals < 0 || !COOKIE_NAME.test(pair.slice(0, equals))) continue;
      if (isNotSecretValue(pair.slice(equals + 1).trim())) continue;
      pairs[i] = pair.slice(0, equals + 1) + REDACTED;
    }
    return name + separator + pairs.join(";");
  },
);
