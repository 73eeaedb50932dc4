import { collapseCarriageReturns } from "./carriage-return.ts";
import { createPrivateKeyBlockRedactor } from "./private-key-blocks.ts";
import { redactSecretPatterns } from "./redact-patterns.ts";
import { createSecretValues, type SecretValues } from "./secret-values.ts";
import { truncateLine } from "./truncate.ts";

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
}

/** Turns one raw output line into the text a viewer may see, or null when it is dropped. */
export interface LineSanitizer {
  sanitize(raw: string): string | null;
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
  return {
    sanitize(raw) {
      let text = privateKeys.redactLine(terminalText(raw));
      registerAddMask(text, secrets);
      text = secrets.mask(text);
      text = redactSecretPatterns(text);
      text = truncateLine(text, maxLength);
      return text.trim() === "" ? null : text;
    },
  };
}
