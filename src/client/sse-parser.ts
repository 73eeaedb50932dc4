/**
 * An incremental Server-Sent Events parser, per the WHATWG "event stream interpretation":
 * fed text chunks as they arrive (split anywhere, even inside a CRLF), it calls back once per
 * dispatched event and once per comment line. Written here rather than taken from a package so
 * the client has no runtime dependency and runs the same in a browser, in Node and in a Worker.
 */
export interface ParsedSseEvent {
  /** The `event:` field, "message" when absent. */
  readonly event: string;
  readonly data: string;
  /** The last event id after this event (ids persist across events, as in EventSource). */
  readonly lastEventId: string;
  /** Whether this very event carried an `id:` field. */
  readonly hasId: boolean;
}

export interface SseParserHandlers {
  onEvent(event: ParsedSseEvent): void;
  /** A line starting with ":" (the server's heartbeat is `: heartbeat`). */
  onComment?(text: string): void;
  /** A `retry:` field: the reconnection delay the server asks for. */
  onRetry?(ms: number): void;
}

export class SseParser {
  #buffer = "";
  #pendingCr = false;
  #event = "";
  #data: string[] = [];
  #hasData = false;
  #hasId = false;
  #lastEventId: string;
  private readonly handlers: SseParserHandlers;

  constructor(handlers: SseParserHandlers, lastEventId = "") {
    this.handlers = handlers;
    this.#lastEventId = lastEventId;
  }

  get lastEventId(): string {
    return this.#lastEventId;
  }

  feed(chunk: string): void {
    let text = chunk;
    // A CR that ended the previous chunk already ended its line; a LF right after it is that
    // same line break, not an empty line (which would dispatch an event too early).
    if (this.#pendingCr && text.startsWith("\n")) text = text.slice(1);
    this.#pendingCr = false;
    this.#buffer += text;
    let start = 0;
    for (let i = 0; i < this.#buffer.length; i++) {
      const char = this.#buffer[i];
      if (char !== "\n" && char !== "\r") continue;
      this.#line(this.#buffer.slice(start, i));
      if (char === "\r") {
        if (i + 1 === this.#buffer.length) this.#pendingCr = true;
        else if (this.#buffer[i + 1] === "\n") i += 1;
      }
      start = i + 1;
    }
    this.#buffer = this.#buffer.slice(start);
  }

  #line(line: string): void {
    if (line === "") {
      this.#dispatch();
      return;
    }
    if (line.startsWith(":")) {
      this.handlers.onComment?.(line.slice(1).trimStart());
      return;
    }
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    switch (field) {
      case "event":
        this.#event = value;
        break;
      case "data":
        this.#data.push(value);
        this.#hasData = true;
        break;
      case "id":
        if (!value.includes("\u0000")) {
          this.#lastEventId = value;
          this.#hasId = true;
        }
        break;
      case "retry":
        if (/^\d+$/.test(value)) this.handlers.onRetry?.(Number(value));
        break;
      default:
        break;
    }
  }

  #dispatch(): void {
    const hasData = this.#hasData;
    const event = {
      event: this.#event === "" ? "message" : this.#event,
      data: this.#data.join("\n"),
      lastEventId: this.#lastEventId,
      hasId: this.#hasId,
    };
    this.#event = "";
    this.#data = [];
    this.#hasData = false;
    this.#hasId = false;
    // An event with no data field is not dispatched (the spec's rule), but its id still counts.
    if (hasData) this.handlers.onEvent(event);
  }
}
