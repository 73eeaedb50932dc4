import { REDACTED } from "./redacted.ts";

const BEGIN = /-----BEGIN [A-Z0-9 ]{0,40}PRIVATE KEY(?: BLOCK)?-----/;
const END = /-----END [A-Z0-9 ]{0,40}PRIVATE KEY(?: BLOCK)?-----/;
// What a line inside a block can be: base64 (indented, perhaps), or an armour header
// (Proc-Type, DEK-Info, Comment, Version). Anything else (spaces inside, characters base64
// never has) means the block was cut short, its END never printed: the line is ordinary
// output and is shown, rather than the rest of the build being hidden.
const KEY_BODY = /^\s*[A-Za-z0-9+/=]+\s*$|^\s*(?:Proc-Type|DEK-Info|Comment|Version):/;

/**
 * Redacts multi-line private key blocks. Stateful: one instance per output stream, fed that
 * stream's lines in order, so a block that arrives over many chunks and lines is redacted
 * from its BEGIN line through its END line.
 */
export interface PrivateKeyBlockRedactor {
  /** The line redacted; `onBlock` is called for each block that begins on it. */
  redactLine(line: string, onBlock?: () => void): string;
  readonly inBlock: boolean;
}

export function createPrivateKeyBlockRedactor(): PrivateKeyBlockRedactor {
  let inBlock = false;

  // Redacts every block that begins in `line` outside a block; enters the block state when the
  // last one does not end on this line.
  const redactFrom = (line: string, onBlock: (() => void) | undefined): string => {
    let out = "";
    let rest = line;
    for (;;) {
      const begin = BEGIN.exec(rest);
      if (!begin) return out + rest;
      onBlock?.();
      out += rest.slice(0, begin.index) + REDACTED;
      const afterBegin = rest.slice(begin.index + begin[0].length);
      const end = END.exec(afterBegin);
      if (!end) {
        inBlock = true;
        return out;
      }
      rest = afterBegin.slice(end.index + end[0].length);
    }
  };

  return {
    redactLine(line, onBlock) {
      if (!inBlock) return redactFrom(line, onBlock);
      const end = END.exec(line);
      if (end) {
        inBlock = false;
        return REDACTED + redactFrom(line.slice(end.index + end[0].length), onBlock);
      }
      if (line.trim() === "") return line;
      if (KEY_BODY.test(line)) return REDACTED;
      inBlock = false;
      return redactFrom(line, onBlock);
    },
    get inBlock() {
      return inBlock;
    },
  };
}
