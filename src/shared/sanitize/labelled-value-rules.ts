import {
  A_SECRET,
  isLabelledSecret,
  NOT_A_SECRET,
  nameParts,
  nameStrength,
  SECRET_NAME_WORDS,
} from "./label-names.ts";
import { REDACTED } from "./redacted.ts";
import { regexRule } from "./secret-pattern.ts";
import {
  isNotSecretValue,
  looksLikeCode,
  looksLikeCredential,
  mostlyWords,
} from "./value-shapes.ts";

// Labelled values: NAME=value, NAME: value, "name": "value", export NAME="value", name => 'x',
// npm's //host/:_authToken=value, and JSON-escaped \"name\":\"value\". The name regex only has
// to find a secret word; nameStrength decides.
const LABEL_NAME = String.raw`[A-Za-z0-9_.\-]{0,64}?(?:secret|token|pass|pwd|key|auth|cred|pat|login|sid|access)[A-Za-z0-9_.\-]{0,64}`;
const LABEL_SEPARATOR = String.raw`\\?["'\x60]?[ \t]{0,8}(?::=|=>|\?=|=(?!=)|:(?!:))[ \t]{0,8}`;
const LABEL_VALUE = String.raw`(?:\\"([^"]*)|"([^"]*)|'([^']*)|\x60([^\x60]*)|([^\s"'\x60,;&|()<>\[\]}\\]+)([;,()<\[|]?))`;

// A lone `key` names cache keys, React keys and object keys; only a value quoted after it
// that is a random mix of both cases and digits is taken for an API key.
const MIXED_CASE_AND_DIGIT = /^(?=.*[a-z])(?=.*[A-Z])(?=.*\d)/;
function isKeyedCredential(name: string, value: string): boolean {
  return (
    name.toLowerCase() === "key" && MIXED_CASE_AND_DIGIT.test(value) && looksLikeCredential(value)
  );
}

// JavaScript concatenation around the "value", not a base64 value that starts with "+".
const CONCATENATION = /^\s*\+\s|\s\+\s*$/;

// name:value with neither quotes nor spaces is a prefix (turbo's auth:build:, gradle's
// :auth:compileJava, image:tag), not a label.
// PWD is the shell's working directory; "pass: 3" is a test count.
// An escaped string \"value\" ends with the backslash of its closing quote.
// 'Credential=' + this.accessKeyId + '/': the "value" is code between two string literals.
export const LABELLED_VALUE = regexRule(
  "labelled-value",
  SECRET_NAME_WORDS,
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
    if (CONCATENATION.test(value)) return match;
    if (!isLabelledSecret(name, value) && !isKeyedCredential(name, value)) return match;
    const open = escaped !== "" ? '\\"' : double !== "" ? '"' : single !== "" ? "'" : "`";
    return `${name}${separator}${open}${REDACTED}${escaped.endsWith("\\") ? "\\" : ""}`;
  },
);

// <password>x</password> as Maven settings.xml and NuGet.config print it.
export const XML_ELEMENT = regexRule(
  "xml-element",
  SECRET_NAME_WORDS,
  /(<([A-Za-z_][A-Za-z0-9_.:-]{0,64})>)([^<]+)(?=<\/)/g,
  (match, open = "", name = "", value = "") =>
    isLabelledSecret(name, value.trim()) ? open + REDACTED : match,
);

// A name, then a few words, then the value: "Setting SONAR_TOKEN to X", "SECRET is X", "Your
// new API token is X", "Generated secret 'X' for the webhook", "password for user ci is X".
// A value that looks like a credential goes. So does any value that is not a word right
// after a variable's name that says secret (DB_PASSWORD is X), as prose does not use those.
const PHRASE_WORDS = String.raw`(?:[ \t]{1,4}[A-Za-z][A-Za-z'-]{0,15}){0,4}`;
const VARIABLE_NAME = /^(?:[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+|[a-z][a-z0-9]*(?:_[a-z0-9]+)+)$/;
const TRAILING_PUNCTUATION = /[.,;:)\]]+$/;

function isPhraseSecret(name: string, words: string, value: string): boolean {
  const strength = nameStrength(name);
  if (strength === NOT_A_SECRET) return false;
  if (looksLikeCredential(value)) return true;
  const wordCount = words
    .trim()
    .split(/\s+/)
    .filter((word) => /^[A-Za-z]/.test(word)).length;
  return (
    strength === A_SECRET &&
    VARIABLE_NAME.test(name) &&
    wordCount <= 1 &&
    value.length >= 8 &&
    !isNotSecretValue(value) &&
    !mostlyWords(value)
  );
}

export const SECRET_PHRASE = regexRule(
  "secret-phrase",
  SECRET_NAME_WORDS,
  new RegExp(
    String.raw`(?<![A-Za-z0-9_.\-])(${LABEL_NAME})(${PHRASE_WORDS}(?:[ \t]{0,4}[:=])?[ \t]{1,4})(["'\x60]?)([A-Za-z0-9+/][^\s"'\x60{}()<>[\]]{5,511})`,
    "gi",
  ),
  (match, name = "", words = "", quote = "", found = "") => {
    const value = found.replace(TRAILING_PUNCTUATION, "");
    if (!isPhraseSecret(name, words, value)) return match;
    return `${name}${words}${quote}${REDACTED}${found.slice(value.length)}`;
  },
);

// gh secret set NAME --body VALUE: the value's name is the argument before the flag.
export const SECRET_SET_BODY = regexRule(
  "secret-set-body",
  ["secret set", "secrets set", "variable set"],
  /((?:secrets?|variable)[ \t]+set[ \t]+[A-Za-z_][A-Za-z0-9_]{0,128}(?:[ \t]+--?[a-z-]{1,16}(?:[ \t=][^\s-]\S{0,128})?)*?[ \t]+(?:--body|-b)(?:[ \t]+|=))(["']?)([^\s"']+)/g,
  (match, command = "", quote = "", value = "") =>
    isNotSecretValue(value) ? match : `${command}${quote}${REDACTED}`,
);

// NuGet.config and friends: <add key="ClearTextPassword" value="x" />.
export const KEY_VALUE_ATTRIBUTES = regexRule(
  "key-value-attributes",
  SECRET_NAME_WORDS,
  /(key=(["'])([A-Za-z0-9_.:-]{1,64})\2[ \t]{1,8}value=(["']))([^"']*)/g,
  (match, prefix = "", _quote = "", name = "", _valueQuote = "", value = "") =>
    isLabelledSecret(name, value) ? prefix + REDACTED : match,
);
