import { z } from "zod";
import { ENTRY_ID_PATTERN } from "./entry.ts";

/**
 * What the runner sends the job's Durable Object right after an XADD succeeded
 * (`POST /internal/jobs/:id/entries`): the same entries, in stream order, with the id of the
 * stream entry right before the first of them. The object fans them out without reading Redis
 * when `previous` is where it stands; otherwise it reads the gap from Redis first.
 *
 * A push with no entries is a keepalive: `previous` is then the stream's top as the runner
 * knows it, so an object that missed the last push learns of the gap without polling.
 */
export const livePushSchema = z.object({
  /** Names the writer (one per job run): a push from a writer the object has not heard from is checked against Redis once. */
  writer: z.string().min(1).max(64),
  /** The entry right before `entries[0]` in the stream ("0-0": none); null when the writer does not know. */
  previous: z.string().regex(ENTRY_ID_PATTERN).nullable(),
  entries: z
    .array(
      z.object({
        id: z.string().regex(ENTRY_ID_PATTERN),
        fields: z.record(z.string(), z.string()),
      }),
    )
    .max(10_000),
});
export type LivePush = z.infer<typeof livePushSchema>;

/** The object's answer: how many viewers the job has, so the runner pushes only while someone watches. */
export interface LivePushAnswer {
  readonly viewers: number;
  /**
   * The object paces its fan-out (a large audience: Viewers.fanOut). The runner then pushes a
   * batch as soon as it pays its share of the command budget rather than hold it for the next
   * one: each push goes to a share of the viewers, and holding would only make lines wait.
   */
  readonly paced?: boolean;
}
