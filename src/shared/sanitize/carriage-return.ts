import stripAnsi from "strip-ansi";

// ESC [ K, ESC [ 0 K, ESC [ 2 K: erase the line (or its rest). A frame that contains one hides
// whatever earlier frames left on the line, which is how most progress bars redraw.
const ERASE_LINE = /\u001b\[[02]?K/;

/**
 * What a terminal shows for one line (no `\n`) once it has been drawn: each `\r` moves the
 * cursor back to column 0 and the next frame overwrites what is there. A progress bar
 * collapses to its final frame; a shorter frame leaves the tail of a longer one visible, as on
 * a real terminal, unless it erases the line. ANSI escape sequences are stripped.
 *
 * Works backwards from the last frame and stops at the first frame that erases the line, so a
 * line of a million redraws costs one pass.
 */
export function collapseCarriageReturns(line: string): string {
  if (!line.includes("\r")) return stripAnsi(line);
  const frames = line.split("\r");
  let visible = "";
  for (let i = frames.length - 1; i >= 0; i--) {
    const frame = frames[i] ?? "";
    if (frame === "") continue;
    const plain = stripAnsi(frame);
    if (plain.length > visible.length) visible += plain.slice(visible.length);
    if (ERASE_LINE.test(frame)) break;
  }
  return visible;
}
