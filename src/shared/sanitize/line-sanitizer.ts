import { MAX_SPANS_PER_LINE, type StyleSpan } from "../style-spans.ts";
import {
  isPlainStyle,
  normalisedLink,
  plainStyle,
  StyleTable,
  styledTerminalLine,
} from "./ansi-styles.ts";
import { collapseCarriageReturns } from "./carriage-return.ts";
import { createPrivateKeyBlockRedactor } from "./private-key-blocks.ts";
import { redactSecretPatterns } from "./redact-patterns.ts";
import { type RedactionTally, tallyRedaction } from "./redaction-families.ts";
import { createSecretValues, type SecretValues } from "./secret-values.ts";
import { mapStyleIds } from "./style-mapping.ts";
import { TRUNCATION_MARKER, truncateLine } from "./truncate.ts";

export const MAX_LINE_LENGTH = 2000;
/**
 * Only this much of a raw line is read. The output keeps at most MAX_LINE_LENGTH characters,
 * so what lies further on can only be cut away; reading a bounded prefix keeps a hostile
 * 10 MB line from costing 10 MB of regex work. The margin covers a long secret (a JWT, a
 * signed URL) that starts before the cut and must still be recognised whole.
 */
export const MAX_INPUT_LENGTH = 16 * 1024;

// C0 controls other than tab, DEL and C1 controls: a terminal would act on them, a viewer
// would show garbage, and SSE treats a lone \r as a line break. \n never reaches here.
const CONTROL_CHARACTERS = /[\u0000-\u0008\u000a-\u001f\u007f-\u009f]/g;
const CONTROL_CHARACTER = /[\u0000-\u0008\u000a-\u001f\u007f-\u009f]/;
// One test for both repairs, so that the common line (neither control characters nor
// surrogates, emoji included here) is scanned once rather than twice.
const NEEDS_REPAIR = /[\u0000-\u0008\u000a-\u001f\u007f-\u009f\ud800-\udfff]/;

export interface LineSanitizerOptions {
  /**
   * Exact values to mask, shared by every stream of a job; a `::add-mask::VALUE` line adds
   * VALUE to them. Without it, each sanitizer keeps its own.
   */
  readonly secrets?: SecretValues;
  readonly maxLength?: number;
  /**
   * Where to count what was masked, by family (the runner's metrics read it once per batch).
   * Only counts: never a value, a rule or a line.
   */
  readonly redactions?: RedactionTally;
}

/** A sanitized line with its colour: spans index into `text` and never hold text. */
export interface StyledLine {
  readonly text: string;
  /** Absent when the line has no style at all. */
  readonly spans?: StyleSpan[];
}

/** Turns one raw output line into the text a viewer may see, or null when it is dropped. */
export interface LineSanitizer {
  sanitize(raw: string): string | null;
  /** The same text as sanitize(), with the line's SGR colours and http(s) links as spans. */
  sanitizeStyled(raw: string): StyledLine | null;
}

const ADD_MASK = "::add-mask::";

/**
 * A build registers a value to mask the way CI systems let it: a line `::add-mask::VALUE`
 * (GitHub Actions' workflow command). VALUE is masked from that line on, on every stream
 * that shares `secrets`; the line itself is shown without it (the github-add-mask rule).
 */
function registerAddMask(text: string, secrets: SecretValues): void {
  const at = text.indexOf(ADD_MASK);
  if (at === -1) return;
  // The value runs to the end of the line, less the quote an `echo "::add-mask::$X"` in a
  // shell trace leaves behind.
  const value = text
    .slice(at + ADD_MASK.length)
    .trim()
    .replace(/^(["'])(.*)\1$|["']$/, "$2");
  secrets.add(value);
}

/**
 * What a terminal shows for one raw line, before any redaction: a bounded prefix, escape
 * sequences and \r frames resolved, controls a viewer cannot show removed, valid UTF-16.
 */
export function terminalText(raw: string): string {
  const text = collapseCarriageReturns(
    raw.length > MAX_INPUT_LENGTH ? raw.slice(0, MAX_INPUT_LENGTH) : raw,
  );
  return NEEDS_REPAIR.test(text) ? text.replace(CONTROL_CHARACTERS, "").toWellFormed() : text;
}

/**
 * One per output stream (stdout, stderr, system): it remembers whether that stream is inside a
 * private key block. Order matters: the line is made what a terminal shows (escape sequences
 * and \r frames gone) before any redaction looks at it, so colour codes cannot split a secret,
 * and it is cut to length only after redaction, so a cut cannot split one either.
 */
export function createLineSanitizer(options: LineSanitizerOptions = {}): LineSanitizer {
  const maxLength = options.maxLength ?? MAX_LINE_LENGTH;
  if (!Number.isInteger(maxLength) || maxLength < 1) {
    throw new RangeError(`maxLength must be a positive integer, got ${maxLength}`);
  }
  const secrets = options.secrets ?? createSecretValues();
  const privateKeys = createPrivateKeyBlockRedactor();
  // The stream's SGR state: a colour set on one line holds on the next, as in a terminal.
  const style = plainStyle();

  const tally = options.redactions;
  const countBlock =
    tally === undefined
      ? undefined
      : () => tally.set("private-key", (tally.get("private-key") ?? 0) + 1);

  const redact = (visible: string): string => {
    const text = privateKeys.redactLine(visible, countBlock);
    registerAddMask(text, secrets);
    const masked = secrets.mask(text);
    if (tally === undefined) return redactSecretPatterns(masked);
    tallyRedaction(tally, "registered-value", text, masked);
    return redactSecretPatterns(masked, tally);
  };

  // A link is kept only when redaction finds nothing in its target: a URL with a token in it
  // is dropped whole rather than shown half masked.
  const linkOf = (raw: string | null): string | null => {
    if (raw === null) return null;
    const href = normalisedLink(raw);
    return href !== null && redactSecretPatterns(secrets.mask(href)) === href ? href : null;
  };

  const sanitizeStyled = (raw: string): StyledLine | null => {
    const prefix = raw.length > MAX_INPUT_LENGTH ? raw.slice(0, MAX_INPUT_LENGTH) : raw;
    const styled = prefix.includes("\u001b") || prefix.includes("\u009b") || !isPlainStyle(style);
    if (!styled) {
      const text = truncateLine(redact(terminalText(prefix)), maxLength);
      return text.trim() === "" ? null : { text };
    }
    const table = new StyleTable();
    const line = styledTerminalLine(prefix, style, table);
    let visible = line.text;
    let ids = line.ids;
    if (NEEDS_REPAIR.test(visible)) {
      const keptIds: number[] = [];
      let kept = "";
      for (let i = 0; i < visible.length; i++) {
        const char = visible.charAt(i);
        if (CONTROL_CHARACTER.test(char)) continue;
        kept += char;
        keptIds.push(ids[i] ?? 0);
      }
      // toWellFormed() replaces a lone surrogate by U+FFFD, one unit for one: ids still line up.
      visible = kept.toWellFormed();
      ids = keptIds;
    }
    // What redaction sees must be exactly what it would see without colour.
    const plain = terminalText(prefix);
    if (visible !== plain) {
      const text = truncateLine(redact(plain), maxLength);
      return text.trim() === "" ? null : { text };
    }
    const redacted = redact(visible);
    const text = truncateLine(redacted, maxLength);
    if (text.trim() === "") return null;
    const mapped = mapStyleIds(visible, ids, redacted);
    const styledLength = text === redacted ? text.length : text.length - TRUNCATION_MARKER.length;
    const spans = spansOf(mapped, styledLength, table, linkOf);
    return spans.length === 0 ? { text } : { text, spans };
  };

  return {
    sanitize: (raw) => sanitizeStyled(raw)?.text ?? null,
    sanitizeStyled,
  };
}

/** Runs of one style over the first `length` units (the truncation marker stays plain). */
function spansOf(
  ids: readonly number[],
  length: number,
  table: StyleTable,
  linkOf: (raw: string | null) => string | null,
): StyleSpan[] {
  const links = new Map<number, string | null>();
  const spans: StyleSpan[] = [];
  let start = 0;
  for (let i = 1; i <= length; i++) {
    const id = ids[start] ?? 0;
    if (i < length && (ids[i] ?? 0) === id) continue;
    if (id !== 0) {
      if (!links.has(id)) links.set(id, linkOf(table.hrefs[id] ?? null));
      const href = links.get(id) ?? null;
      const c = table.tokens[id] ?? "";
      if (c !== "" || href !== null) {
        const previous = spans.at(-1);
        // Two runs that look the same once a dropped link is gone are one span.
        if (
          previous &&
          previous.e === start &&
          previous.c === c &&
          previous.h === (href ?? undefined)
        )
          spans[spans.length - 1] = { ...previous, e: i };
        else spans.push(href === null ? { s: start, e: i, c } : { s: start, e: i, c, h: href });
        if (spans.length > MAX_SPANS_PER_LINE) return spans.slice(0, MAX_SPANS_PER_LINE);
      }
    }
    start = i;
  }
  return spans;
}
