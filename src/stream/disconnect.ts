/** The reason this object aborts a viewer's stream with when it ends it itself (a slow viewer). */
export const CLOSED_BY_SERVER = "closed by the server";

// workerd's words for a peer that is gone: the viewer's tab closed, its network dropped, the
// Worker in front of the object cancelled the body (with no reason given: "Stream was
// cancelled.").
const PEER_GONE = /^(?:Network connection lost|Stream was cancelled)\.?$/;

/**
 * Whether a viewer's stream failed the way streams end: the viewer went away, or this object
 * ended the stream itself. That is no fault and is not logged; anything else is.
 */
export function isExpectedDisconnect(error: unknown): boolean {
  if (error === CLOSED_BY_SERVER) return true;
  if (!(error instanceof Error)) return false;
  // Its reason may come back wrapped in an Error (the viewer's stream is errored with one).
  return (
    error.name === "AbortError" ||
    error.message === CLOSED_BY_SERVER ||
    PEER_GONE.test(error.message)
  );
}
