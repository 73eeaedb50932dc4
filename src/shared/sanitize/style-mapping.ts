import { REDACTED } from "./redacted.ts";

/**
 * Past this many edits between a line and its redacted form, the alignment stops looking for
 * characters the two share and treats everything between their common head and tail as one
 * changed region: colour is lost there, never misplaced. Keeps a hostile line linear-ish.
 */
const MAX_EDITS = 256;
// Changed regions closer than this are one region: letters of the secret that happen to
// match letters of "[REDACTED]" must not paint the secret's colours onto the marker.
const MERGE_BELOW = REDACTED.length;

interface Hunk {
  /** [b0, b1) in the text before, [a0, a1) in the text after. */
  b0: number;
  b1: number;
  a0: number;
  a1: number;
}

/**
 * Myers' O(ND) shortest edit script between a and b, as the changed hunks; null when it needs
 * more than MAX_EDITS edits.
 */
function changedHunks(a: string, b: string, offset: number): Hunk[] | null {
  const n = a.length;
  const m = b.length;
  const max = Math.min(n + m, MAX_EDITS);
  const size = 2 * max + 2;
  let v = new Int32Array(size);
  const trace: Int32Array[] = [];
  let found = -1;
  outer: for (let d = 0; d <= max; d++) {
    trace.push(v.slice());
    const next = v.slice();
    for (let k = -d; k <= d; k += 2) {
      const down = k === -d || (k !== d && (v[k - 1 + max] ?? 0) < (v[k + 1 + max] ?? 0));
      let x = down ? (v[k + 1 + max] ?? 0) : (v[k - 1 + max] ?? 0) + 1;
      let y = x - k;
      while (x < n && y < m && a.charCodeAt(x) === b.charCodeAt(y)) {
        x += 1;
        y += 1;
      }
      next[k + max] = x;
      if (x >= n && y >= m) {
        trace.push(next);
        found = d;
        break outer;
      }
    }
    v = next;
  }
  if (found < 0) return null;
  // Walk back through the trace: every diagonal run is an equal stretch, the rest changes.
  const equal: [number, number, number][] = [];
  let x = n;
  let y = m;
  for (let d = found; d > 0; d--) {
    const prev = trace[d] ?? new Int32Array(size);
    const k = x - y;
    const down = k === -d || (k !== d && (prev[k - 1 + max] ?? 0) < (prev[k + 1 + max] ?? 0));
    const prevK = down ? k + 1 : k - 1;
    const prevX = prev[prevK + max] ?? 0;
    const prevY = prevX - prevK;
    const startX = down ? prevX : prevX + 1;
    const startY = startX - k;
    if (x > startX) equal.push([startX, startY, x - startX]);
    x = prevX;
    y = prevY;
  }
  if (x > 0) equal.push([0, 0, x]);
  equal.reverse();
  const hunks: Hunk[] = [];
  let ax = 0;
  let by = 0;
  for (const [ex, ey, length] of equal) {
    if (ex > ax || ey > by) hunks.push({ b0: ax, b1: ex, a0: by, a1: ey });
    ax = ex + length;
    by = ey + length;
  }
  if (ax < n || by < m) hunks.push({ b0: ax, b1: n, a0: by, a1: m });
  return hunks.map((h) => ({
    b0: h.b0 + offset,
    b1: h.b1 + offset,
    a0: h.a0 + offset,
    a1: h.a1 + offset,
  }));
}

/**
 * The style ids of `after` (the redacted form of `before`): a character redaction left in
 * place keeps its style; every changed region (a [REDACTED] marker, what a rule rewrote) takes
 * the one style of where it starts, so a span never begins or ends inside a marker and the
 * marker never shows where colours changed inside the secret.
 */
export function mapStyleIds(before: string, beforeIds: readonly number[], after: string): number[] {
  if (before === after) return beforeIds.slice();
  let head = 0;
  const shorter = Math.min(before.length, after.length);
  while (head < shorter && before.charCodeAt(head) === after.charCodeAt(head)) head += 1;
  let tail = 0;
  while (
    tail < shorter - head &&
    before.charCodeAt(before.length - 1 - tail) === after.charCodeAt(after.length - 1 - tail)
  )
    tail += 1;
  const middleBefore = before.slice(head, before.length - tail);
  const middleAfter = after.slice(head, after.length - tail);
  const hunks = changedHunks(middleBefore, middleAfter, head) ?? [
    { b0: head, b1: before.length - tail, a0: head, a1: after.length - tail },
  ];
  const merged: Hunk[] = [];
  for (const hunk of hunks) {
    const last = merged.at(-1);
    if (last !== undefined && hunk.a0 - last.a1 < MERGE_BELOW) {
      last.b1 = hunk.b1;
      last.a1 = hunk.a1;
    } else merged.push({ ...hunk });
  }
  const ids: number[] = new Array(after.length);
  let a = 0;
  let b = 0;
  for (const hunk of merged) {
    for (; a < hunk.a0; a++, b++) ids[a] = beforeIds[b] ?? 0;
    const id = hunk.b1 > hunk.b0 ? (beforeIds[hunk.b0] ?? 0) : (beforeIds[hunk.b0 - 1] ?? 0);
    for (; a < hunk.a1; a++) ids[a] = id;
    b = hunk.b1;
  }
  for (; a < after.length; a++, b++) ids[a] = beforeIds[b] ?? 0;
  return ids;
}
