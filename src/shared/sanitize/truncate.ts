export const TRUNCATION_MARKER = "...[truncated]";

/**
 * Cuts `text` to its first `maxLength` UTF-16 code units plus a visible marker, one code unit
 * fewer when the cut would split a surrogate pair (an emoji must not become U+FFFD).
 */
export function truncateLine(text: string, maxLength: number): string {
  if (text.length <= maxLength) return text;
  let end = maxLength;
  const last = text.charCodeAt(end - 1);
  if (last >= 0xd800 && last <= 0xdbff) end -= 1;
  return text.slice(0, end) + TRUNCATION_MARKER;
}
