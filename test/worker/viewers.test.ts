import { afterEach, describe, expect, it, vi } from "vitest";
import type { Logger } from "../../src/shared/log.ts";
import { CLOSED_BY_SERVER, isExpectedDisconnect } from "../../src/stream/disconnect.ts";
import { Viewers } from "../../src/stream/viewers.ts";

// The viewers part on its own, inside workerd: its streams, how they end, what it logs.

function recordingLogger(): Logger & { readonly errors: unknown[][] } {
  const errors: unknown[][] = [];
  return {
    errors,
    info: () => undefined,
    warn: () => undefined,
    error: (...args: unknown[]) => void errors.push(args),
  };
}

const settings = { maxViewers: 4, maxViewerLagBytes: 1024, heartbeatMs: 60_000 };

async function readAll(response: Response): Promise<string> {
  return await response.text();
}

afterEach(() => {
  vi.useRealTimers();
});

describe("isExpectedDisconnect()", () => {
  it.each<[string, unknown]>([
    ["this object's own reason", CLOSED_BY_SERVER],
    ["this object's own reason, as a native stream hands it on", new Error(CLOSED_BY_SERVER)],
    ["workerd's lost peer", new Error("Network connection lost.")],
    ["workerd's body cancelled with no reason", new Error("Stream was cancelled.")],
    ["an aborted request", new DOMException("The operation was aborted.", "AbortError")],
  ])("recognises %s", (_name, error) => {
    expect(isExpectedDisconnect(error)).toBe(true);
  });

  it.each<[string, unknown]>([
    ["another error", new Error("disk on fire")],
    ["a message that only mentions the words", new Error("oops: Network connection lost. twice")],
    ["another string", "closed by the client"],
    ["a TypeError", new TypeError("Cannot read properties of undefined")],
    ["nothing", undefined],
  ])("does not take %s for one", (_name, error) => {
    expect(isExpectedDisconnect(error)).toBe(false);
  });
});

describe("Viewers", () => {
  it("paces a catch-up past the lag bound: ready() resolves once the viewer has read, again and again", async () => {
    const viewers = new Viewers(settings, recordingLogger());
    const { viewer, response } = viewers.connect(new AbortController().signal);
    const reader = response.body?.getReader();
    let received = 0;
    const reading = (async () => {
      for (;;) {
        const chunk = await reader?.read();
        if (chunk === undefined || chunk.done) return;
        received += chunk.value.byteLength;
      }
    })();
    // A resume of 8 KiB through a 1 KiB bound, 3 KiB at a time, as catch-up sends it.
    const slice = `data: ${"x".repeat(1017)}\n\n`.repeat(3);
    for (let i = 0; i < 8; i++) {
      await viewers.ready(viewer);
      viewers.sendText(viewer, slice, true);
    }
    await viewers.ready(viewer);
    expect(viewer.closed).toBe(false);
    viewers.close(viewer, false);
    await reading;
    expect(received).toBe("retry: 2000\n\n".length + 8 * slice.length);
  });

  it("ends a dropped viewer's stream cleanly after what it was sent", async () => {
    const logger = recordingLogger();
    const viewers = new Viewers(settings, logger);
    const { viewer, response } = viewers.connect(new AbortController().signal);
    viewers.sendText(viewer, "data: one\n\n");
    viewers.close(viewer, true);
    viewers.sendText(viewer, "data: too late\n\n");
    expect(await readAll(response)).toBe("retry: 2000\n\ndata: one\n\n");
    expect(viewers.size).toBe(0);
    expect(logger.errors).toEqual([]);
  });

  it("aborts a dropped viewer that reads nothing for 30 s, so it cannot hold its queue", async () => {
    vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout"] });
    const viewers = new Viewers(settings, recordingLogger());
    const { viewer, response } = viewers.connect(new AbortController().signal);
    // Past the lag bound unread: closed as too slow.
    viewers.sendText(viewer, `data: ${"x".repeat(2048)}\n\n`);
    expect(viewer.closed).toBe(true);
    await vi.advanceTimersByTimeAsync(29_000);
    const reader = response.body?.getReader();
    expect(reader).toBeDefined();
    await vi.advanceTimersByTimeAsync(1_000);
    await expect(reader?.read()).rejects.toThrow(CLOSED_BY_SERVER);
  });

  it("cuts off a resuming viewer that reads nothing for 30 s, so a paced catch-up does not wait on it for ever", async () => {
    vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout"] });
    const viewers = new Viewers(settings, recordingLogger());
    const { viewer, response } = viewers.connect(new AbortController().signal);
    // A catch-up's slice past the lag bound, paced: the viewer stays, and the next waits.
    viewers.sendText(viewer, `data: ${"x".repeat(2048)}\n\n`, true);
    expect(viewer.closed).toBe(false);
    let ready = false;
    const waiting = viewers.ready(viewer).then(() => {
      ready = true;
    });
    await vi.advanceTimersByTimeAsync(29_000);
    expect(ready).toBe(false);
    expect(viewers.size).toBe(1);
    await vi.advanceTimersByTimeAsync(2_000);
    await waiting;
    expect(viewer.closed).toBe(true);
    expect(viewers.size).toBe(0);
    await expect(response.body?.getReader().read()).rejects.toThrow(CLOSED_BY_SERVER);
  });

  it("logs nothing when a viewer goes away or stops reading, and names any other failure of its stream", async () => {
    const logger = recordingLogger();
    const viewers = new Viewers(settings, logger);
    const gone = viewers.connect(new AbortController().signal);
    const broken = viewers.connect(new AbortController().signal);
    // A body cancelled with no reason: as a client that stops reading (a Worker cancelling
    // the body, a test's reader) ends it.
    const quiet = viewers.connect(new AbortController().signal);
    await gone.response.body?.cancel(new Error("Network connection lost."));
    await broken.response.body?.cancel(new Error("disk on fire"));
    await quiet.response.body?.cancel();
    await vi.waitUntil(() => viewers.size === 0);
    expect(logger.errors).toHaveLength(1);
    expect(logger.errors[0]).toEqual(["a viewer's stream failed", new Error("disk on fire")]);
  });

  it("drops a viewer whose request is aborted", async () => {
    const viewers = new Viewers(settings, recordingLogger());
    const request = new AbortController();
    const { viewer, response } = viewers.connect(request.signal);
    request.abort();
    expect(viewer.closed).toBe(true);
    expect(await readAll(response)).toBe("retry: 2000\n\n");
  });

  it("drops a viewer whose request was aborted before it connected, freeing its place", async () => {
    const viewers = new Viewers(settings, recordingLogger());
    const request = new AbortController();
    request.abort();
    const { viewer, response } = viewers.connect(request.signal);
    expect(viewer.closed).toBe(true);
    expect(viewers.size).toBe(0);
    expect(await readAll(response)).toBe("retry: 2000\n\n");
  });
});
