import { REDACTED } from "./redacted.ts";

// Values that are clearly not secrets. Used by the label-based rules only: a token format that
// matched is redacted whatever it looks like.

const NOT_SECRET_WORDS = new Set([
  "true",
  "false",
  "null",
  "nil",
  "none",
  "undefined",
  "yes",
  "no",
  "on",
  "off",
  "!0",
  "!1",
  "enabled",
  "disabled",
  "required",
  "optional",
  "missing",
  "invalid",
  "expired",
  "empty",
  "redacted",
  "hidden",
  "masked",
  "inherit",
  "include",
  "omit",
  "same-origin",
  "ok",
  "success",
  "failed",
  "failure",
  "denied",
  "granted",
  "valid",
  "pending",
  "skipped",
  "unset",
  "header",
  "headers",
  // type names, as TypeScript, Python and friends print them in code frames
  "string",
  "number",
  "boolean",
  "bigint",
  "symbol",
  "object",
  "any",
  "unknown",
  "never",
  "void",
  "str",
  "int",
  "float",
  "bool",
  "bytes",
  "dict",
  "list",
  // keywords that start an expression rather than a literal
  "await",
  "new",
  "typeof",
  "keyof",
  "unique",
  "readonly",
  "function",
  "async",
  "this",
  "require",
  "import",
  "return",
  "yield",
  // placeholders that documentation and templates put where a secret goes
  "changeme",
  "change-me",
  "change_me",
  "replaceme",
  "replace-me",
  "replace_me",
  "placeholder",
  "example",
  "dummy",
  "todo",
  "tbd",
  // authorization schemes (the credential is the next word)
  "bearer",
  "basic",
  "token",
  "digest",
]);

// A reference to a value, not the value: $VAR ${VAR} $(cmd) %VAR% {{ x }} <token> [token]
// env.X ...
const REFERENCE =
  /^(?:\$[{(A-Za-z_]|%[A-Za-z_][A-Za-z0-9_]*%|\{|<|\[[^\]]*\]$|(?:process\.env|import\.meta\.env|os\.environ|env|secrets|vars|inputs|github|config|settings|options|opts|props|ctx|context|req|request|args|self|this)[.[])/;
// The name of another variable (`KV_REST_API_TOKEN`) or a placeholder (`YOUR_API_KEY`,
// `USER:PASSWORD@HOST`): upper-case words say what belongs there.
const ENV_NAME = /^[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+$|^[A-Z]{2,24}$/;
// Password=0, TOKEN=1: a switch or a count, too short to be a secret.
const TRIVIAL = /^\d{1,3}$/;
// A mask someone else already applied: ***, xxxx, ••••, ----.
const MASK = /^[*xX•·#_-]{3,}$/;
// npm/PyPI version ranges: ^1.2.3, ~1.2, >=2.0.0-beta.1, 1.x
const VERSION = /^[\^~<>=]{0,2}v?\d{1,9}(?:\.(?:\d{1,9}|[x*])){1,3}(?:[-+][0-9A-Za-z.-]{1,64})?$/;
// An absolute or relative path of at least two segments (GOOGLE_APPLICATION_CREDENTIALS=/x/y.json).
const PATH = /^(?:~|\.{1,2})?(?:\/[\w.@+-]+){2,}\/?$|^\.{1,2}\/[\w.@+/-]+$/;
const ALNUM = /[A-Za-z0-9]/;

/** Whether a value is clearly not a secret: a word, a reference, a placeholder, a version, a path. */
export function isNotSecretValue(value: string): boolean {
  if (!ALNUM.test(value)) return true;
  // Already redacted, or a template whose secret part is interpolated: `Bearer ${token}`.
  if (value.includes(REDACTED) || value.includes("${") || value.includes("{{")) return true;
  if (value.length <= 24 && NOT_SECRET_WORDS.has(value.toLowerCase())) return true;
  return (
    TRIVIAL.test(value) ||
    REFERENCE.test(value) ||
    ENV_NAME.test(value) ||
    MASK.test(value) ||
    VERSION.test(value) ||
    PATH.test(value)
  );
}

// Generated credentials are long and mix letters with digits, or are long enough without.
const RANDOM_LOOKING = /^(?=[^\s]{16,}$)(?=.*\d)(?=.*[A-Za-z])|^[A-Za-z0-9+/=_.-]{32,}$/;

const CREDENTIAL_CHARACTERS = /^[A-Za-z0-9_\-+/=.~]{16,512}$/;
// A word as text writes it: lower case, Capitalised or upper case (random letters are none).
const WORD_SEGMENT = /^(?:[a-z]{3,}|[A-Z][a-z]{2,}|[A-Z]{3,})$/;

/**
 * Whether a value is mostly words (node-cache-Linux-x64-npm-5c2e1f0b, webhook-signing-name):
 * 40 % or more of its characters are in segments that are words.
 */
export function mostlyWords(value: string): boolean {
  let wordCharacters = 0;
  for (const segment of value.split(/[-_./]/)) {
    if (WORD_SEGMENT.test(segment)) wordCharacters += segment.length;
  }
  return wordCharacters >= value.length * 0.4;
}

function entropyBitsPerCharacter(value: string): number {
  const counts = new Map<string, number>();
  for (const char of value) counts.set(char, (counts.get(char) ?? 0) + 1);
  let bits = 0;
  for (const count of counts.values()) {
    const p = count / value.length;
    bits -= p * Math.log2(p);
  }
  return bits;
}

/**
 * A stricter test than looksGenerated, for values that only a phrase ties to a secret word
 * ("Your new API token is X"): 16+ token characters with letters and digits, a character
 * spread that text does not have, and not mostly words (node-cache-Linux-x64-npm-5c2e1f0b).
 */
export function looksLikeCredential(value: string): boolean {
  if (!CREDENTIAL_CHARACTERS.test(value) || !DIGIT.test(value) || !/[A-Za-z]/.test(value)) {
    return false;
  }
  if (isNotSecretValue(value) || mostlyWords(value)) return false;
  return entropyBitsPerCharacter(value) >= 3;
}

/** Whether a value looks machine-generated, as credentials do. */
export function looksGenerated(value: string): boolean {
  return RANDOM_LOOKING.test(value);
}

// A code identifier or member expression: `getToken`, `config.apiKey`, `userPassword`.
const IDENTIFIER = /^[A-Za-z_$][\w$]*(?:\.[A-Za-z_$][\w$]*)*$/;
// A type name of two or more words: `PropertyKey`, `TokenResource` (a lone `Welcome` may be a password).
const TYPE_NAME = /^[A-Z][a-z]+(?:[A-Z][a-z0-9]+)+$/;
const SMALL_NUMBER = /^-?\d{1,5}$/;
export const DIGIT = /\d/;

/**
 * Decides whether an unquoted value after a secret name is code rather than a literal:
 * `token = getToken()`, `password: string;`, `apiKey = config.apiKey`, `token: Key)`,
 * `secret = value`, `depth: 0`. Only for a separator written with spaces, as code is;
 * `NAME=value` is redacted unless it is a call.
 */
export function looksLikeCode(value: string, next: string, separator: string): boolean {
  if (next === "(" && IDENTIFIER.test(value)) return true;
  if (!/\s/.test(separator)) return false;
  if (SMALL_NUMBER.test(value)) return true;
  if (!IDENTIFIER.test(value)) return false;
  // A statement or argument end, a type, a member access, a type name.
  if (next !== "" || value.includes(".") || TYPE_NAME.test(value)) return true;
  // `secret = value` is code; `password: postgres` is YAML, and redacted.
  return separator.includes("=") && !DIGIT.test(value) && value.length <= 24;
}
