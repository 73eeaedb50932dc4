import type { Cursor, LogLine } from "../shared/entry.ts";
import { ERROR_LINE } from "../shared/log-classes.ts";
import type { LogReader } from "./reader.ts";

export const MAX_SEARCH_RESULTS = 100;
export const MAX_QUERY_LENGTH = 200;
/**
 * Lines one request reads at most; the answer then says where to go on. With 64 entries of up
 * to 500 lines per XRANGE this is a handful of Redis commands (or archive blocks) a request.
 */
export const SEARCH_SCAN_LINES = 200_000;

export interface SearchQuery {
  /** Case-insensitive text, or null for `kind: "error"` alone. */
  readonly text: string | null;
  readonly kind: "error" | null;
  readonly after: Cursor | null;
  readonly limit: number;
  readonly scanLines?: number;
}

export interface SearchPage {
  readonly matches: LogLine[];
  readonly scanned: number;
  /** Where the next request goes on from (`after=`), or null when the whole log was read. */
  readonly next: string | null;
}

/**
 * Matching lines across the whole log (Redis where it holds them, else the archive, through
 * the one reader), oldest first, at most `limit`, reading at most `scanLines` lines.
 */
export async function searchLog(reader: LogReader, query: SearchQuery): Promise<SearchPage> {
  const needle = query.text?.toLowerCase() ?? null;
  const budget = query.scanLines ?? SEARCH_SCAN_LINES;
  const matches: LogLine[] = [];
  let scanned = 0;
  for await (const item of reader.forward(query.after)) {
    if (item.kind === "gap") continue;
    for (const line of item.entry.lines) {
      scanned += 1;
      const found =
        (needle === null || line.text.toLowerCase().includes(needle)) &&
        (query.kind === null || ERROR_LINE.test(line.text));
      if (found) matches.push(line);
      if (matches.length === query.limit || scanned === budget) {
        // The rest of this entry is read again next time: the cursor, not the entry, is the place.
        return { matches, scanned, next: line.cursor };
      }
    }
  }
  return { matches, scanned, next: null };
}
