// The example page's entry: reads where to connect from the URL's fragment and mounts the view.
// In a real app, `getToken` is Clerk's (`await window.Clerk.session.getToken()`), which returns a
// fresh session token each time; here a development token is passed in the fragment.
import { createBuildLogClient } from "../../src/client/index.ts";
import { mountLiveLogView } from "./live-log-view.ts";

const params = new URLSearchParams(location.hash.slice(1));
const api = params.get("api") ?? location.origin;
const token = params.get("token");
const jobId = params.get("job") ?? "";
const transport = params.get("transport") === "eventsource" ? "eventsource" : "fetch";
const tail = params.get("tail");
const root = document.getElementById("log");

if (root === null) throw new Error("the page has no #log element");
const client = createBuildLogClient({ baseUrl: api, getToken: () => token });
const view = mountLiveLogView({
  client,
  jobId,
  root,
  // EventSource cannot send the token: it opens the stream with a ticket instead.
  live:
    transport === "eventsource" ? { transport, auth: "ticket" } : { transport, auth: "session" },
  ...(tail === null ? {} : { tail: Number(tail) }),
});
(window as unknown as { liveLog: typeof view }).liveLog = view;
