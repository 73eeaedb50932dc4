import { z } from "zod";
import { ENTRY_ID_PATTERN } from "./entry.ts";

/**
 * The archive's progress as kept in Redis (`archiveStateKey`), beside the index in the archive
 * itself: read by the runner to know what it may trim, written by the Worker's archiver.
 */
export const archiveStateSchema = z.object({
  /** The last entry id archived, or null before the first segment. */
  through: z.string().regex(ENTRY_ID_PATTERN).nullable(),
  lines: z.number().int().nonnegative(),
  segments: z.number().int().nonnegative(),
  complete: z.boolean(),
});
export type ArchiveState = z.infer<typeof archiveStateSchema>;

/** The state from its stored JSON; null when absent or unreadable (nothing is trimmed then). */
export function parseArchiveState(raw: unknown): ArchiveState | null {
  if (typeof raw !== "string") return null;
  try {
    const parsed = archiveStateSchema.safeParse(JSON.parse(raw));
    return parsed.success ? parsed.data : null;
  } catch {
    return null;
  }
}
