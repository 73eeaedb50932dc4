import { isLabelledSecret, nameParts } from "./label-names.ts";
import { REDACTED } from "./redacted.ts";
import { regexRule } from "./secret-pattern.ts";
import { looksLikeCode } from "./value-shapes.ts";

// Labelled values: NAME=value, NAME: value, "name": "value", export NAME="value", name => 'x',
// npm's //host/:_authToken=value, and JSON-escaped \"name\":\"value\". The name regex only has
// to find a secret word; nameStrength decides.
const LABEL_NAME = String.raw`[A-Za-z0-9_.\-]{0,64}?(?:secret|token|pass|pwd|key|auth|cred|pat)[A-Za-z0-9_.\-]{0,64}`;
const LABEL_SEPARATOR = String.raw`\\?["'\x60]?[ \t]{0,8}(?::=|=>|\?=|=(?!=)|:(?!:))[ \t]{0,8}`;
const LABEL_VALUE = String.raw`(?:\\"([^"]*)|"([^"]*)|'([^']*)|\x60([^\x60]*)|([^\s"'\x60,;&|()<>\[\]}\\]+)([;,()<\[|]?))`;

const CONCATENATION = /^\s*\+|\+\s*$/;

// name:value with neither quotes nor spaces is a prefix (turbo's auth:build:, gradle's
// :auth:compileJava, image:tag), not a label.
// PWD is the shell's working directory; "pass: 3" is a test count.
// An escaped string \"value\" ends with the backslash of its closing quote.
// 'Credential=' + this.accessKeyId + '/': the "value" is code between two string literals.
export const LABELLED_VALUE = regexRule(
  "labelled-value",
  ["secret", "token", "pass", "pwd", "key", "auth", "cred", "pat"],
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
      if (parts.length === 1 && parts[0] === "pass" && /\s/.test(separator)) return match;
      return `${name}${separator}${REDACTED}${next}`;
    }
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
