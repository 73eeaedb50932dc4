import { createKeywordScanner } from "./keyword-scanner.ts";
import { type RedactionTally, tallyRedaction } from "./redaction-families.ts";
import { SECRET_PATTERNS } from "./rule-set.ts";
import { LONG_RUN_LENGTH, type SecretPattern } from "./secret-pattern.ts";

/**
 * Applies a rule set, in order, to one line, running only the rules whose keywords it holds;
 * adds what each rule masked to `tally` under the rule's family (rules without one count none).
 */
export type PatternRedactor = (line: string, tally?: RedactionTally) => string;

// A rule needs a keyword of its first group, and one of its second when it has one.
const FIRST = 1;
const SECOND = 2;

const LONG_RUN = new RegExp(`(?<![A-Za-z0-9_-])[A-Za-z0-9_-]{${LONG_RUN_LENGTH}}`);

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\/-]/g, "\\$&");
}

export function createPatternRedactor(rules: readonly SecretPattern[]): PatternRedactor {
  const keywords: string[] = [];
  const keywordIndex = new Map<string, number>();
  // For each keyword, which bit it sets in which rule.
  const targets: { rule: number; bit: number }[][] = [];
  const addKeyword = (keyword: string, rule: number, bit: number): void => {
    let index = keywordIndex.get(keyword);
    if (index === undefined) {
      index = keywords.length;
      keywords.push(keyword);
      keywordIndex.set(keyword, index);
      targets.push([]);
    }
    targets[index]?.push({ rule, bit });
  };
  const needed = new Uint8Array(rules.length);
  // Kept apart from needed: a rule with no keywords is marked whole by a long run.
  rules.forEach((rule, i) => {
    if (rule.keywords.length === 0 && rule.needsLongRun !== true) {
      throw new RangeError(`rule ${rule.id} has no keywords and does not need a long run`);
    }
    for (const keyword of rule.keywords) addKeyword(keyword, i, FIRST);
    needed[i] = FIRST;
    if (rule.alsoKeywords !== undefined) {
      for (const keyword of rule.alsoKeywords) addKeyword(keyword, i, SECOND);
      needed[i] = FIRST | SECOND;
    }
  });
  const scanner = createKeywordScanner(keywords);
  // The candidate test, two native regex scans that most lines of build output fail: a long
  // run of token characters, or a keyword of a rule that can match without one. Only a
  // candidate line pays for the keyword scan (a JavaScript loop) and its rules.
  const shortKeywords = [
    ...new Set(
      rules.flatMap((rule) =>
        rule.needsLongRun === true || rule.gate !== undefined ? [] : rule.keywords,
      ),
    ),
  ].sort((a, b) => b.length - a.length);
  const gates = rules.flatMap((rule) => (rule.gate === undefined ? [] : [rule.gate]));
  const shortCandidate = new RegExp(
    [...shortKeywords.map(escapeRegExp), ...gates.map((gate) => `(?:${gate})`)].join("|"),
    "i",
  );
  // Reused between calls: redaction is synchronous, so one line is in flight at a time.
  const seen = new Uint8Array(rules.length);
  let candidates = 0;
  const mark = (rule: number, bit: number): void => {
    if (seen[rule] === 0) candidates++;
    seen[rule] = (seen[rule] ?? 0) | bit;
  };
  const onKeyword = (keyword: number): void => {
    for (const { rule, bit } of targets[keyword] ?? []) mark(rule, bit);
  };
  const onRule = (rule: number): void => mark(rule, needed[rule] ?? FIRST);

  const everyLongRunLine = rules.flatMap((rule, i) => (rule.keywords.length === 0 ? [i] : []));

  return (line, tally) => {
    const longRun = LONG_RUN.test(line);
    if (!longRun && !shortCandidate.test(line)) return line;
    candidates = 0;
    scanner.scan(line, onKeyword);
    if (longRun) for (const i of everyLongRunLine) onRule(i);
    if (candidates === 0) return line;
    let text = line;
    for (let i = 0; i < rules.length; i++) {
      const have = seen[i] ?? 0;
      if (have === 0) continue;
      seen[i] = 0;
      const rule = rules[i];
      if (rule === undefined || have !== needed[i]) continue;
      if (rule.needsLongRun === true && !longRun) continue;
      const redacted = rule.redact(text);
      if (tally !== undefined && rule.family !== undefined)
        tallyRedaction(tally, rule.family, text, redacted);
      text = redacted;
    }
    return text;
  };
}

/** The full rule set (SECRET_PATTERNS) applied to one line (no \n or \r). */
export const redactSecretPatterns: PatternRedactor = createPatternRedactor(SECRET_PATTERNS);
