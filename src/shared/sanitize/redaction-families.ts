import { REDACTED } from "./redacted.ts";

/**
 * What kind of rule masked a secret: the families of the rule table (rule-set.ts), plus the
 * exact values a job registered and multi-line private key blocks. Metrics count redactions by
 * family, never by rule or value: a family says what leaked without saying what it was.
 */
export const REDACTION_FAMILIES = [
  /** A job's secrets and secret-named env values, in every encoding, and `::add-mask::` values. */
  "registered-value",
  /** PEM private key blocks, one line or many. */
  "private-key",
  /** Token formats (GitHub, AWS, Stripe, JWTs, ...), whatever surrounds them. */
  "token",
  /** Credentials in URLs: user info, signed query parameters, webhook URLs. */
  "url",
  /** Authorization and Cookie headers, bearer tokens. */
  "header",
  /** Passwords on command lines and in tool configuration (curl -u, mysql -p, .npmrc, ...). */
  "command-line",
  /** Values labelled as secret (`password=...`, `"apiKey": "..."`, XML elements). */
  "labelled-value",
] as const;
export type RedactionFamily = (typeof REDACTION_FAMILIES)[number];

/**
 * Redactions seen since the tally was last read, by family. The sanitizer adds to it; whoever
 * counts (the runner's metrics) reads and clears it once per batch of lines.
 */
export type RedactionTally = Map<RedactionFamily, number>;

function markers(text: string): number {
  let count = 0;
  for (let at = text.indexOf(REDACTED); at !== -1; at = text.indexOf(REDACTED, at + 1)) count++;
  return count;
}

/**
 * Adds to `tally` the secrets `family` masked going from `before` to `after`: the markers it
 * added (a rule that rewrites an earlier rule's marker adds none). Costs a comparison on the
 * ordinary line, which no rule changes.
 */
export function tallyRedaction(
  tally: RedactionTally,
  family: RedactionFamily,
  before: string,
  after: string,
): void {
  if (after === before) return;
  const added = markers(after) - markers(before);
  if (added > 0) tally.set(family, (tally.get(family) ?? 0) + added);
}
