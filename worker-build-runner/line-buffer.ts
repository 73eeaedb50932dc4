/**
 * Turns a stream of output chunks into complete lines. Chunks may split a line, a `\r\n` or a
 * multi-byte UTF-8 character anywhere; lines come out whole. `\n` ends a line and a `\r` just
 * before it is dropped; a lone `\r` stays in the line (the sanitizer collapses progress frames).
 */
export interface LineBuffer {
  /** Adds a chunk; returns the lines it completed. */
  push(chunk: string | Uint8Array): string[];
  /** Ends the stream: returns the unterminated last line, if any. */
  end(): string[];
}

export interface LineBufferOptions {
  /** A line that grows past this many characters without a newline is cut. Default 16 KiB. */
  readonly maxLineLength?: number;
  /**
   * What happens past maxLineLength: "split" emits the line in pieces of at most that length
   * (a build that prints dots forever still shows progress); "truncate" keeps the first piece
   * and discards the rest up to the newline (one output line per input line).
   */
  readonly overflow?: "split" | "truncate";
  /**
   * Moves a split point back so that it does not fall inside a secret (the job's registered
   * values: SecretValues.safeCut); a secret cut in two would be masked in neither piece.
   */
  readonly safeCut?: (text: string, cut: number) => number;
}

export const DEFAULT_MAX_LINE_LENGTH = 16 * 1024;
// Where a long line is split, look this far back for a frame start or a space, so the cut does
// not fall inside a word (a token cut in two might no longer be recognised as one).
const SPLIT_LOOKBACK = 1024;

function isHighSurrogate(code: number): boolean {
  return code >= 0xd800 && code <= 0xdbff;
}

function splitPoint(text: string, max: number): number {
  const windowStart = Math.max(1, max - SPLIT_LOOKBACK);
  const frame = text.lastIndexOf("\r", max - 1);
  if (frame >= windowStart) return frame;
  const space = text.lastIndexOf(" ", max - 1);
  if (space >= windowStart) return space + 1;
  return isHighSurrogate(text.charCodeAt(max - 1)) ? max - 1 : max;
}

export function createLineBuffer(options: LineBufferOptions = {}): LineBuffer {
  const maxLineLength = options.maxLineLength ?? DEFAULT_MAX_LINE_LENGTH;
  if (!Number.isInteger(maxLineLength) || maxLineLength < 2) {
    throw new RangeError(`maxLineLength must be an integer >= 2, got ${maxLineLength}`);
  }
  const overflow = options.overflow ?? "split";
  const decoder = new TextDecoder("utf-8");
  let pending = "";
  let discarding = false;

  const finishLine = (line: string, lines: string[]): void => {
    lines.push(line.endsWith("\r") ? line.slice(0, -1) : line);
  };

  const bound = (lines: string[]): void => {
    while (pending.length > maxLineLength) {
      if (overflow === "truncate") {
        const end = isHighSurrogate(pending.charCodeAt(maxLineLength - 1))
          ? maxLineLength - 1
          : maxLineLength;
        if (!discarding) lines.push(pending.slice(0, end));
        discarding = true;
        pending = "";
        return;
      }
      const point = splitPoint(pending, maxLineLength);
      const cut = Math.max(1, Math.min(point, options.safeCut?.(pending, point) ?? point));
      lines.push(pending.slice(0, cut));
      pending = pending.slice(cut);
    }
  };

  return {
    push(chunk) {
      const text = typeof chunk === "string" ? chunk : decoder.decode(chunk, { stream: true });
      const lines: string[] = [];
      let start = 0;
      for (let newline = text.indexOf("\n"); newline !== -1; newline = text.indexOf("\n", start)) {
        const line = pending + text.slice(start, newline);
        pending = "";
        start = newline + 1;
        if (discarding) {
          discarding = false;
          continue;
        }
        if (line.length > maxLineLength) {
          pending = line;
          bound(lines);
          if (overflow === "truncate") {
            discarding = false;
            continue;
          }
          const rest = pending;
          pending = "";
          if (rest !== "") finishLine(rest, lines);
          continue;
        }
        finishLine(line, lines);
      }
      if (!discarding) {
        pending += text.slice(start);
        bound(lines);
      }
      return lines;
    },
    end() {
      const tail = pending + decoder.decode();
      pending = "";
      const wasDiscarding = discarding;
      discarding = false;
      if (tail === "" || wasDiscarding) return [];
      const lines: string[] = [];
      pending = tail;
      bound(lines);
      const rest = pending;
      pending = "";
      if (rest !== "") finishLine(rest, lines);
      return lines;
    },
  };
}
