import { REDACTED } from "./redacted.ts";

const BEGIN = /-----BEGIN [A-Z0-9 ]{0,40}PRIVATE KEY(?: BLOCK)?-----/;
const END = /-----END [A-Z0-9 ]{0,40}PRIVATE KEY(?: BLOCK)?-----/;
// Key material: a run of base64, or an armour header (Proc-Type, DEK-Info, Comment, Version).
const KEY_MATERIAL = /[A-Za-z0-9+/=]{16}|^\s*(?:Proc-Type|DEK-Info|Comment|Version):/;
// After this many lines in a row that hold no key material the block was cut short (its END
// never printed); stop there rather than hide the rest of the build.
const MAX_NON_KEY_LINES = 3;

/**
 * Redacts multi-line private key blocks. Stateful: one instance per output stream, fed that
 * stream's lines in order, so a block that arrives over many chunks and lines is redacted
 * from its BEGIN line through its END line.
 */
export interface PrivateKeyBlockRedactor {
  redactLine(line: string): string;
  readonly inBlock: boolean;
}

export function createPrivateKeyBlockRedactor(): PrivateKeyBlockRedactor {
  let inBlock = false;
  let nonKeyLines = 0;

  // Redacts every block that begins in `line` outside a block; enters the block state when the
  // last one does not end on this line.
  const redactFrom = (line: string): string => {
    let out = "";
    let rest = line;
    for (;;) {
      const begin = BEGIN.exec(rest);
      if (!begin) return out + rest;
      out += rest.slice(0, begin.index) + REDACTED;
      const afterBegin = rest.slice(begin.index + begin[0].length);
      const end = END.exec(afterBegin);
      if (!end) {
        inBlock = true;
        nonKeyLines = 0;
        return out;
      }
      rest = afterBegin.slice(end.index + end[0].length);
    }
  };

  return {
    redactLine(line) {
      if (!inBlock) return redactFrom(line);
      const end = END.exec(line);
      if (end) {
        inBlock = false;
        return REDACTED + redactFrom(line.slice(end.index + end[0].length));
      }
      if (line.trim() === "") return line;
      nonKeyLines = KEY_MATERIAL.test(line) ? 0 : nonKeyLines + 1;
      if (nonKeyLines >= MAX_NON_KEY_LINES) inBlock = false;
      return REDACTED;
    },
    get inBlock() {
      return inBlock;
    },
  };
}
