import ansiRegex from "ansi-regex";
import { isAllowedLink } from "../style-spans.ts";

// The very expression strip-ansi removes: the plain text built here is, by construction, the
// text collapseCarriageReturns() gives (line-sanitizer.ts checks it, and drops the colour if
// they ever differ), so colour can never change what redaction sees.
const ANSI = ansiRegex();
const ERASE_LINE = /\u001b\[[02]?K/;
const SGR = /^(?:\u001b\[|\u009b)([0-9;:]*)m$/;
const OSC = /^(?:\u001b\]|\u009d)([\s\S]*?)(?:\u0007|\u001b\\|\u009c)$/;

/** What SGR and OSC 8 sequences have set so far on one output stream. */
export interface TerminalStyle {
  bold: boolean;
  dim: boolean;
  italic: boolean;
  underline: boolean;
  inverse: boolean;
  strike: boolean;
  fg: string | null;
  bg: string | null;
  /** The raw OSC 8 target; whether it is shown as a link is decided per line. */
  href: string | null;
}

export function plainStyle(): TerminalStyle {
  return {
    bold: false,
    dim: false,
    italic: false,
    underline: false,
    inverse: false,
    strike: false,
    fg: null,
    bg: null,
    href: null,
  };
}

export function isPlainStyle(style: TerminalStyle): boolean {
  return styleTokens(style) === "" && style.href === null;
}

/** The span's `c` for a style (see style-spans.ts). */
export function styleTokens(style: TerminalStyle): string {
  const tokens: string[] = [];
  if (style.bold) tokens.push("b");
  if (style.dim) tokens.push("d");
  if (style.italic) tokens.push("i");
  if (style.underline) tokens.push("u");
  if (style.inverse) tokens.push("v");
  if (style.strike) tokens.push("x");
  if (style.fg !== null) tokens.push(`fg${style.fg}`);
  if (style.bg !== null) tokens.push(`bg${style.bg}`);
  return tokens.join(" ");
}

const hex = (value: number): string => value.toString(16).padStart(2, "0");

/** An extended colour (38/48 ...): `n` (0..255) or `#rrggbb`; null when malformed. */
function extendedColour(params: readonly string[], at: number): [string | null, number] {
  const mode = params[at + 1];
  if (mode === "5") {
    const n = Number(params[at + 2]);
    return [Number.isInteger(n) && n >= 0 && n <= 255 ? String(n) : null, at + 3];
  }
  if (mode === "2") {
    const rgb = params.slice(at + 2, at + 5).map(Number);
    const valid = rgb.length === 3 && rgb.every((v) => Number.isInteger(v) && v >= 0 && v <= 255);
    return [valid ? `#${rgb.map(hex).join("")}` : null, at + 5];
  }
  return [null, params.length];
}

function applyCode(style: TerminalStyle, code: number): void {
  if (code === 0) Object.assign(style, { ...plainStyle(), href: style.href });
  else if (code === 1) style.bold = true;
  else if (code === 2) style.dim = true;
  else if (code === 3) style.italic = true;
  else if (code === 4 || code === 21) style.underline = true;
  else if (code === 7) style.inverse = true;
  else if (code === 9) style.strike = true;
  else if (code === 22) {
    style.bold = false;
    style.dim = false;
  } else if (code === 23) style.italic = false;
  else if (code === 24) style.underline = false;
  else if (code === 27) style.inverse = false;
  else if (code === 29) style.strike = false;
  else if (code >= 30 && code <= 37) style.fg = String(code - 30);
  else if (code === 39) style.fg = null;
  else if (code >= 40 && code <= 47) style.bg = String(code - 40);
  else if (code === 49) style.bg = null;
  else if (code >= 90 && code <= 97) style.fg = String(code - 90 + 8);
  else if (code >= 100 && code <= 107) style.bg = String(code - 100 + 8);
}

/**
 * Applies one SGR parameter list: `1;31`, `38;5;208`, `38;2;255;0;0`, the ITU colon form
 * `38:2::255:0:0` or `4:3`, and `` (a reset).
 */
export function applySgrList(style: TerminalStyle, list: string): void {
  const params = list === "" ? ["0"] : list.split(";");
  for (let i = 0; i < params.length; i++) {
    const param = params[i] ?? "";
    if (param.includes(":")) {
      applyColonGroup(style, param.split(":"));
      continue;
    }
    const code = Number(param === "" ? 0 : param);
    if (code === 38 || code === 48) {
      const [colour, next] = extendedColour(params, i);
      if (code === 38) style.fg = colour;
      else style.bg = colour;
      i = next - 1;
      continue;
    }
    applyCode(style, code);
  }
}

function applyColonGroup(style: TerminalStyle, sub: readonly string[]): void {
  const code = Number(sub[0]);
  if (code === 38 || code === 48) {
    // 38:2:<colour space id>:r:g:b has one more (often empty) field than 38:2:r:g:b.
    const parts = sub[1] === "2" && sub.length >= 6 ? [sub[0] ?? "", "2", ...sub.slice(3)] : sub;
    const [colour] = extendedColour(parts, 0);
    if (code === 38) style.fg = colour;
    else style.bg = colour;
  } else if (code === 4) style.underline = sub[1] !== "0";
}

/** One interned style per distinct look, so a line's characters carry small ids. */
export class StyleTable {
  private readonly ids = new Map<string, number>();
  readonly tokens: string[] = [""];
  readonly hrefs: (string | null)[] = [null];

  constructor() {
    this.ids.set("\u0000", 0);
  }

  idOf(style: TerminalStyle): number {
    const tokens = styleTokens(style);
    const key = `${tokens}\u0000${style.href ?? ""}`;
    let id = this.ids.get(key);
    if (id === undefined) {
      id = this.tokens.length;
      this.ids.set(key, id);
      this.tokens.push(tokens);
      this.hrefs.push(style.href);
    }
    return id;
  }
}

export interface StyledText {
  readonly text: string;
  /** One style id per UTF-16 unit of `text` (ids of the table). */
  readonly ids: number[];
}

/** One frame (no \r): escape sequences applied to `style`, the rest is text. */
function styledFrame(frame: string, style: TerminalStyle, table: StyleTable): StyledText {
  let text = "";
  const ids: number[] = [];
  let at = 0;
  const addText = (piece: string) => {
    if (piece === "") return;
    const id = table.idOf(style);
    text += piece;
    for (let k = 0; k < piece.length; k++) ids.push(id);
  };
  ANSI.lastIndex = 0;
  for (let match = ANSI.exec(frame); match !== null; match = ANSI.exec(frame)) {
    addText(frame.slice(at, match.index));
    at = match.index + match[0].length;
    const sgr = SGR.exec(match[0]);
    if (sgr) {
      applySgrList(style, sgr[1] ?? "");
      continue;
    }
    const osc = OSC.exec(match[0]);
    if (osc?.[1]?.startsWith("8;")) {
      // OSC 8 ; params ; URI: an empty URI ends the link.
      const uri = osc[1].slice(osc[1].indexOf(";", 2) + 1);
      style.href = osc[1].indexOf(";", 2) < 0 || uri === "" ? null : uri;
    }
  }
  addText(frame.slice(at));
  return { text, ids };
}

/**
 * The styled twin of collapseCarriageReturns(): the same visible text, with the style id of
 * every unit. `style` is the stream's state, carried from line to line as a terminal does,
 * and left as the line's last frame leaves it.
 */
export function styledTerminalLine(
  line: string,
  style: TerminalStyle,
  table: StyleTable,
): StyledText {
  const frames = line.split("\r").map((frame) => ({
    raw: frame,
    ...styledFrame(frame, style, table),
  }));
  let text = "";
  let ids: number[] = [];
  for (let i = frames.length - 1; i >= 0; i--) {
    const frame = frames[i];
    if (frame === undefined || frame.raw === "") continue;
    if (frame.text.length > text.length) {
      text += frame.text.slice(text.length);
      ids = ids.concat(frame.ids.slice(ids.length));
    }
    if (ERASE_LINE.test(frame.raw)) break;
  }
  return { text, ids };
}

/** A link target as a span may carry it: normalised, http(s), or null. */
export function normalisedLink(raw: string): string | null {
  if (!URL.canParse(raw)) return null;
  const href = new URL(raw).href;
  return isAllowedLink(href) ? href : null;
}
