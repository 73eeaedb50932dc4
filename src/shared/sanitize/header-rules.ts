import { REDACTED } from "./redacted.ts";
import { regexRule } from "./secret-pattern.ts";
import { DIGIT, isNotSecretValue } from "./value-shapes.ts";

const AUTHORIZATION_SCHEMES =
  "bearer|basic|token|bot|digest|negotiate|ntlm|apikey|api-key|sso-key|dpop|hoba|mutual|vapid|aws4-hmac-sha256|hmac-sha256|hmac|oauth|sharedkey|splunk|jwt|key|pat";
// Schemes whose credential is several comma-separated parameters, some quoted (Digest, SigV4).
const MULTI_PARAMETER_SCHEMES = "digest|aws4-hmac-sha256|hmac-sha256|hmac|oauth";

// The credential runs to the closing quote when quoted, to the end of the line for a
// multi-parameter scheme, else it is one word. The scheme word stays.
export const AUTHORIZATION_HEADER = regexRule(
  "authorization-header",
  ["authorization"],
  new RegExp(
    String.raw`(?<![A-Za-z0-9_])((?:proxy-)?authorization)(\\?["'\x60]?[ \t]{0,8}[:=][ \t]{0,8})` +
      String.raw`(?:(\\?["'\x60])((?:${AUTHORIZATION_SCHEMES})[ \t]{1,8})?([^"'\x60\\]*)` +
      String.raw`|((?:${MULTI_PARAMETER_SCHEMES})[ \t]{1,8})([^]*)` +
      String.raw`|((?:${AUTHORIZATION_SCHEMES})[ \t]{1,8})?([^\s,;"'\x60\\]*))`,
    "gi",
  ),
  (
    match,
    name = "",
    separator = "",
    quote = "",
    quotedScheme = "",
    quoted = "",
    multiScheme = "",
    multi = "",
    scheme = "",
    word = "",
  ) => {
    const value = quote !== "" ? quoted : multiScheme !== "" ? multi.trimEnd() : word;
    if (isNotSecretValue(value)) return match;
    const tail = multiScheme !== "" ? multi.slice(value.length) : "";
    return `${name}${separator}${quote}${quotedScheme || multiScheme || scheme}${REDACTED}${tail}`;
  },
);

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
