import { isLabelledSecret, NOT_A_SECRET, nameParts, nameStrength } from "./label-names.ts";
import { REDACTED } from "./redacted.ts";
import { regexRule } from "./secret-pattern.ts";
import { looksLikeCode, looksLikeCredential } from "./value-shapes.ts";

// Labelled values: NAME=value, NAME: value, "name": "value", export NAME="value", name => 'x',
// npm's //host/:_authToken=value, and JSON-escaped \"name\":\"value\". The name regex only has
// to find a secret word; nameStrength decides.
const LABEL_NAME = String.raw`[A-Za-z0-9_.\-]{0,64}?(?:secret|token|pass|pwd|key|auth|cred|pat|login|sid|access)[A-Za-z0-9_.\-]{0,64}`;
const LABEL_SEPARATOR = String.raw`\\?["'\x60]?[ \t]{0,8}(?::=|=>|\?=|=(?!=)|:(?!:))[ \t]{0,8}`;
const LABEL_VALUE = String.raw`(?:\\"([^"]*)|"([^"]*)|'([^']*)|\x60([^\x60]*)|([^\s"'\x60,;&|()<>\[\]}\\]+)([;,()<\[|]?))`;

// JavaScript concatenation around the "value", not a base64 value that starts with "+".
const CONCATENATION = /^\s*\+\s|\s\+\s*$/;

// name:value with neither quotes nor spaces is a prefix (turbo's auth:build:, gradle's
// :auth:compileJava, image:tag), not a label.
// PWD is the shell's working directory; "pass: 3" is a test count.
// An escaped string \"value\" ends with the backslash of its closing quote.
// 'Credential=' + this.accessKeyId + '/': the "value" is code between two string literals.
export const LABELLED_VALUE = regexRule(
  "labelled-value",
  ["secret", "token", "pass", "pwd", "key", "auth", "cred", "pat", "login", "sid", "access"],
  new RegExp(
    String.raw`(?<![A-Za-z0-9_.\-])(${LABEL_NAME})(${LABEL_SEPARATOR})${LABEL_VALUE}`,
    "gi",
  ),
  (
    match,
    name = "",
    separator = "",
    escaped = "",
    double = "",
    single = "",
    backtick = "",
    bare = "",
    next = "",
  ) => {
    if (bare !== "") {
      if (separator === ":") return match;
      if (!isLabelledSecret(name, bare) || looksLikeCode(bare, next, separator)) return match;
      const parts = nameParts(name);
      if (parts.length === 1 && (parts[0] === "pwd" || parts[0] === "oldpwd") && /^[/~]/.test(bare))
        return match;
      if (
        parts.length === 1 &&
        parts[0] === "pass" &&
        /\s/.test(separator) &&
        !looksLikeCredential(bare)
      )
        return match;
      return `${name}${separator}${REDACTED}${next}`;
    }
    // NAME=`gh auth token` runs a command; its output is not in the line.
    if (backtick !== "" && /\s/.test(backtick)) return match;
    const value = escaped !== "" ? escaped.replace(/\\$/, "") : double || single || backtick;
    if (CONCATENATION.test(value) || !isLabelledSecret(name, value)) return match;
    const open = escaped !== "" ? '\\"' : double !== "" ? '"' : single !== "" ? "'" : "`";
    return `${name}${separator}${open}${REDACTED}${escaped.endsWith("\\") ? "\\" : ""}`;
  },
);

// <password>x</password> as Maven settings.xml and NuGet.config print it.
export const XML_ELEMENT = regexRule(
  "xml-element",
  ["secret", "token", "pass", "pwd", "key", "auth", "cred", "pat"],
  /(<([A-Za-z_][A-Za-z0-9_.:-]{0,64})>)([^<]+)(?=<\/)/g,
  (match, open = "", name = "", value = "") =>
    isLabelledSecret(name, value.trim()) ? open + REDACTED : match,
);

// A name, then a few words, then the value: "Setting SONAR_TOKEN to X", "SECRET is X", "Your
// new API token is X", "Generated secret 'X' for the webhook", "password for user ci is X".
// Only a value that looks like a credential goes, as prose follows these words too.
const PHRASE_WORDS = String.raw`(?:[ \t]{1,4}[A-Za-z][A-Za-z'-]{0,15}){0,4}`;
export const SECRET_PHRASE = regexRule(
  "secret-phrase",
  ["secret", "token", "pass", "pwd", "key", "auth", "cred", "pat", "login", "sid", "access"],
  new RegExp(
    String.raw`(?<![A-Za-z0-9_.\-])(${LABEL_NAME})(${PHRASE_WORDS}(?:[ \t]{0,4}[:=])?[ \t]{1,4})(["'\x60]?)([A-Za-z0-9_\-+/=.~]{16,512})(?![A-Za-z0-9_\-+/=.~])`,
    "gi",
  ),
  (match, name = "", words = "", quote = "", value = "") => {
    const named = nameStrength(name) !== NOT_A_SECRET;
    if (!named || !looksLikeCredential(value)) return match;
    return `${name}${words}${quote}${REDACTED}`;
  },
);
