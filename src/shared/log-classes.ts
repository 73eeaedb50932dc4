/**
 * What makes a log line an error or a warning to a person reading it, for the viewer's
 * highlighting and failure summary and for `GET /api/jobs/:id/logs/search?kind=error`. The
 * viewer page carries a copy of these two expressions (it has no build step);
 * test/shared/log-classes.test.ts checks that the copy is the same.
 */
export const ERROR_LINE =
  /npm ERR!|npm error|\berror TS\d+|\berror\b.*\bTS\d{4}\b|(?:^|\s)(?:[A-Z][A-Za-z]*)?Error:|Failed to compile|ELIFECYCLE|error during build|Build failed|Command failed|failed with exit code|\bERR_[A-Z_]+\b|^\s*✖|^error\b|\[ERROR\]/;
export const WARNING_LINE = /npm WARN|npm warn|\bwarning\b|\bWarning:|\bWARN\b|⚠|\(!\)|deprecated/i;

export type LineKind = "error" | "warning" | null;

export function lineKind(text: string): LineKind {
  if (ERROR_LINE.test(text)) return "error";
  if (WARNING_LINE.test(text)) return "warning";
  return null;
}
