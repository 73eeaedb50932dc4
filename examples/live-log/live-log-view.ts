// A small live build log for any web page, on the typed client: it follows a job to its end
// across reconnects, shows the connection's state, and loads older lines on demand (history
// paged backwards). Plain DOM, no framework; a React app would hold the same loop in an effect.
import {
  type BuildLogClient,
  type LiveLogOptions,
  LOG_START,
  type LogLine,
} from "../../src/client/index.ts";

export interface LiveLogViewOptions {
  readonly client: BuildLogClient;
  readonly jobId: string;
  /** Where the view is drawn; its content is replaced. */
  readonly root: HTMLElement;
  readonly live?: Pick<LiveLogOptions, "auth" | "transport">;
  /** Start this many lines from the end (older ones behind "Load older lines"); default: the whole log. */
  readonly tail?: number;
}

export interface LiveLogView {
  /** Resolves with the job's final status, or null when stopped first. */
  readonly finished: Promise<string | null>;
  stop(): void;
}

function element<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attributes: Record<string, string>,
  text = "",
): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, value);
  node.textContent = text;
  return node;
}

function row(line: LogLine): HTMLElement {
  // textContent, never innerHTML: a log line is whatever a build printed.
  return element("div", { class: `line ${line.source}`, "data-cursor": line.cursor }, line.text);
}

export function mountLiveLogView(options: LiveLogViewOptions): LiveLogView {
  const { client, jobId, root } = options;
  const controller = new AbortController();
  const status = element("p", { id: "status", "data-status": "connecting" }, "connecting");
  const older = element("button", { id: "older", type: "button", hidden: "" }, "Load older lines");
  const lines = element("div", { id: "lines", role: "log", "aria-live": "polite" });
  root.replaceChildren(status, older, lines);

  let oldestCursor: string | null = null;
  older.addEventListener("click", async () => {
    if (oldestCursor === null) return;
    older.disabled = true;
    const page = await client.logPage(jobId, { before: oldestCursor, limit: options.tail ?? 100 });
    lines.prepend(...page.lines.map(row));
    oldestCursor = page.cursors.before;
    older.hidden = !page.has_more;
    older.disabled = false;
  });

  const setStatus = (state: string, text = state): void => {
    status.dataset.status = state;
    status.textContent = text;
  };

  async function follow(): Promise<string | null> {
    let after: string | null = LOG_START;
    if (options.tail !== undefined) {
      // The newest lines first, then live from the last of them.
      const page = await client.logPage(jobId, { limit: options.tail, signal: controller.signal });
      lines.append(...page.lines.map(row));
      oldestCursor = page.cursors.before;
      older.hidden = !page.has_more;
      after = page.cursors.after ?? LOG_START;
    }
    const log = client.openLog(jobId, { ...options.live, after, signal: controller.signal });
    for await (const event of log) {
      switch (event.type) {
        case "connected":
          setStatus("live", event.attempt === 0 ? "live" : `live (reconnected ${event.attempt}×)`);
          break;
        case "reconnecting":
          setStatus("reconnecting");
          break;
        case "log":
          lines.append(...event.lines.map(row));
          break;
        case "done":
          setStatus(event.status);
          return event.status;
        default:
          // heartbeats, and events a newer server sends that this view does not show
          break;
      }
    }
    setStatus("stopped");
    return null;
  }

  const finished = follow().catch((error: unknown) => {
    setStatus("error", error instanceof Error ? error.message : String(error));
    return null;
  });
  return { finished, stop: () => controller.abort() };
}
