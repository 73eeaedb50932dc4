// The typed client for build-log-stream's public API. Import it from a browser app (bundled,
// or as ES modules), from Node 18+ or from a Worker: it uses only fetch, URL, streams and
// TextDecoderStream, and has no runtime dependency.
export {
  type BuildLogClient,
  type BuildLogClientOptions,
  createBuildLogClient,
  type JobListPage,
  type JobListQuery,
  type PageQuery,
  type PagesOptions,
} from "./client.ts";
export { BuildLogApiError } from "./errors.ts";
export {
  type EventSourceConstructor,
  type EventSourceLike,
  LiveLog,
  type LiveLogOptions,
  LOG_START,
  STREAM_EVENT_DECODERS,
} from "./live-log.ts";
export { type ParsedSseEvent, SseParser } from "./sse-parser.ts";
export type * from "./types.ts";
