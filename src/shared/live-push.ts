import { z } from "zod";
import {
  compareEntryIds,
  decodeEntry,
  ENTRY_ID_PATTERN,
  EntryFormatError,
  type StreamEntry,
} from "./entry.ts";
import { ApiError } from "./errors.ts";

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

/**
 * A push over the job's push socket (`GET /internal/jobs/:id/push-socket`, a WebSocket): one
 * message per push, each answered by a message with the same `seq`, in order.
 */
export const pushMessageSchema = z.object({
  seq: z.number().int().nonnegative(),
  push: livePushSchema,
});

/** The answer to a push message: the push's answer, or the error a POST would have answered. */
export type PushReply =
  | ({ readonly seq: number } & LivePushAnswer)
  | {
      readonly seq: number | null;
      readonly error: { readonly code: "invalid_push" | "internal"; readonly message: string };
    };

/**
 * Runners send a push of more than this as a POST: a Worker takes WebSocket messages of up to
 * 1 MiB (a message says what a push says, and a little more).
 */
export const MAX_PUSH_MESSAGE_BYTES = 1024 * 1024 - 1024;

/** A push as the object takes it: its entries decoded as a Redis read would give them. */
export interface DecodedPush {
  readonly writer: string;
  readonly previous: string | null;
  readonly entries: readonly StreamEntry[];
}

/**
 * Decodes a push's entries by the same decoder a Redis read goes through, and checks that their
 * ids increase after `previous`: an ApiError (400 invalid_push) names what is wrong.
 */
export function decodeLivePush(push: LivePush): DecodedPush {
  let entries: StreamEntry[];
  try {
    entries = push.entries.map((entry) => decodeEntry(entry.id, entry.fields));
  } catch (error) {
    if (error instanceof EntryFormatError)
      throw new ApiError(400, "invalid_push", error.message, { cause: error });
    throw error;
  }
  const ids = [push.previous ?? "0-0", ...entries.map((entry) => entry.id)];
  if (ids.some((id, i) => i > 0 && compareEntryIds(ids[i - 1] ?? "0-0", id) >= 0))
    throw new ApiError(400, "invalid_push", "entry ids must increase, after the previous id");
  return { writer: push.writer, previous: push.previous, entries };
}
