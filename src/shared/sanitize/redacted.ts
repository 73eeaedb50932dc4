/** The text that stands in for every redacted secret. */
export const REDACTED = "[REDACTED]";
