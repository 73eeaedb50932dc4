import { REDACTED } from "./redacted.ts";
import type { RedactionFamily } from "./redaction-families.ts";

/**
 * One redaction rule. It runs only on a line that contains one of its `keywords` (lowercase,
 * matched case-insensitively) and, when `alsoKeywords` is given, one of those as well: the
 * prefilter that lets ordinary build output through without running any rule. A rule without
 * keywords runs on every line that has a long run (it must set needsLongRun).
 */
export interface SecretPattern {
  readonly id: string;
  /** Its family in the rule table (rule-set.ts), for the counts of redactions by family. */
  readonly family?: RedactionFamily;
  readonly keywords: readonly string[];
  readonly alsoKeywords?: readonly string[];
  /**
   * Every match holds a run of LONG_RUN_LENGTH or more of [A-Za-z0-9_-] (a generated token
   * does): then a line without such a run is not a candidate, whatever keywords it holds.
   */
  readonly needsLongRun?: boolean;
  /**
   * For a rule that can match without a long run: a regex (source) that every line it can
   * change matches, tighter than its keywords. The candidate test uses it in their place.
   */
  readonly gate?: string;
  redact(line: string): string;
}

export const LONG_RUN_LENGTH = 20;

/**
 * Where the global `pattern` next matches in `text` at `from` or after; `text.length` when it
 * does not: the end of a span a hand-written rule scans.
 */
export function indexFrom(pattern: RegExp, text: string, from: number): number {
  pattern.lastIndex = from;
  return pattern.exec(text)?.index ?? text.length;
}

/**
 * A rule made of a global regex and a function that returns the replacement for one match,
 * given the match and its capture groups (an unmatched group arrives as "").
 */
export function regexRule(
  id: string,
  keywords: readonly string[],
  regex: RegExp,
  replace: (match: string, ...groups: string[]) => string,
  options: Pick<SecretPattern, "alsoKeywords" | "needsLongRun" | "gate"> = {},
): SecretPattern {
  if (!regex.global) throw new RangeError(`rule ${id}: the regex needs the g flag`);
  if (/\(\?<[A-Za-z_$]/.test(regex.source)) {
    throw new RangeError(`rule ${id}: no named groups (replace gets the positional ones)`);
  }
  return {
    id,
    keywords,
    ...options,
    redact: (line) =>
      line.replace(regex, (...args: unknown[]) => {
        // replace() passes (match, ...groups, offset, input); unmatched groups are undefined.
        const groups = args.slice(1, -2).map((group) => (typeof group === "string" ? group : ""));
        return replace(String(args[0]), ...groups);
      }),
  };
}

const DIGIT = /\d/;
const UPPER = /[A-Z]/g;
const VOWEL = /[aeiouAEIOU]/g;

/**
 * A name in code that merely begins like a token (a C function hf_registerProtocolHandoff):
 * after the prefix, no digit, fewer capitals than random letters have (about half), and the
 * vowels of words (random letters have about one in five).
 */
export function looksLikeIdentifier(match: string): boolean {
  if (DIGIT.test(match)) return false;
  const body = match.slice(Math.max(match.lastIndexOf("_"), match.lastIndexOf("-")) + 1);
  if (body.length === 0) return false;
  const capitals = body.match(UPPER)?.length ?? 0;
  const vowels = body.match(VOWEL)?.length ?? 0;
  return capitals < body.length * 0.25 && vowels >= body.length * 0.3;
}

/**
 * A token format: every match is a credential and is replaced whole. Unless `shortRuns` is
 * set (base64 bodies, where + and / cut the runs), a match holds a long run (needsLongRun).
 */
export function tokenRule(
  id: string,
  keywords: readonly string[],
  regex: RegExp,
  options: { readonly shortRuns?: boolean } = {},
): SecretPattern {
  if (!regex.global) throw new RangeError(`rule ${id}: the regex needs the g flag`);
  return {
    id,
    keywords,
    needsLongRun: options.shortRuns !== true,
    redact: (line) =>
      line.replace(regex, (match) => (looksLikeIdentifier(match) ? match : REDACTED)),
  };
}
