import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import type { Logger } from "../../src/shared/log.ts";
import { CLOSED_BY_SERVER, isExpectedDisconnect } from "../../src/stream/disconnect.ts";
import { type FanOutSlice, Viewers } from "../../src/stream/viewers.ts";

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

describe("Viewers.fanOut pacing a large audience", () => {
  // The same rules at a small scale: past `pacedFrom` live viewers, as at 1,000 in production.
  const paced = { ...settings, maxViewers: 50, activePollMs: 100, pacedFrom: 2 };
  const encoder = new TextEncoder();
  const decoder = new TextDecoder();

  function slice(seq: number, text = `line ${seq}`): FanOutSlice {
    const event = `id: ${seq}-0:0\ndata: ${text}\n\n`;
    return {
      after: seq === 1 ? "0-0" : `${seq - 1}-0`,
      ids: [`${seq}-0`],
      events: [event],
      shared: encoder.encode(event),
      position: `${seq}-0`,
    };
  }

  /** Live viewers whose streams are read as they come: every chunk (a write) kept apart. */
  function audience(viewers: Viewers, count: number) {
    return Array.from({ length: count }, () => {
      const { viewer, response } = viewers.connect(new AbortController().signal);
      viewer.live = true;
      const chunks: string[] = [];
      const reader = response.body?.getReader();
      const done = (async () => {
        for (;;) {
          const chunk = await reader?.read();
          if (chunk === undefined || chunk.done) return;
          chunks.push(decoder.decode(chunk.value));
        }
      })();
      return { viewer, chunks, done };
    });
  }

  const seqsOf = (chunks: readonly string[]): number[] =>
    [...chunks.join("").matchAll(/^data: line (\d+)( x+)?$/gm)].map((match) => Number(match[1]));
  const upTo = (n: number) => Array.from({ length: n }, (_, i) => i + 1);
  const at = (seq: number) => `${seq}-0`;

  /** Slices `from` to `to`, `gapMs` apart on the fake clock. */
  async function fanOutEvery(viewers: Viewers, from: number, to: number, gapMs = 50) {
    for (let seq = from; seq <= to; seq++) {
      viewers.fanOut(slice(seq));
      await vi.advanceTimersByTimeAsync(gapMs);
    }
  }

  /** Ends every stream (closeAll) and waits until each reader has read its stream out. */
  async function closeAndRead(viewers: Viewers, readers: readonly { done: Promise<void> }[]) {
    viewers.closeAll();
    await Promise.all(readers.map((r) => r.done));
  }

  beforeEach(() => {
    vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout", "Date"] });
  });

  it("writes slices 50 ms apart to each half in turn: every viewer gets every line once, in order, in about one write per interval", async () => {
    const viewers = new Viewers(paced, recordingLogger());
    const readers = audience(viewers, 6);
    const reached: number[] = [];
    for (let seq = 1; seq <= 40; seq++) {
      viewers.fanOut(slice(seq));
      reached.push(readers.filter((r) => r.viewer.lastSent === at(seq)).length);
      await vi.advanceTimersByTimeAsync(50);
    }
    // The first slices went to everyone; from then on each went to half, and the other half
    // got it with the next one.
    expect(reached.slice(0, 2)).toEqual([6, 3]);
    expect(reached.slice(2).every((count) => count === 3)).toBe(true);
    await vi.advanceTimersByTimeAsync(100);
    await closeAndRead(viewers, readers);
    for (const { chunks } of readers) {
      expect(seqsOf(chunks)).toEqual(upTo(40));
      // The retry frame, then about 40 / 2 writes rather than 40.
      expect(chunks.length - 1).toBeGreaterThanOrEqual(20);
      expect(chunks.length - 1).toBeLessThanOrEqual(22);
    }
  });

  it("sends what waits by a timer when no slice follows", async () => {
    const viewers = new Viewers(paced, recordingLogger());
    const readers = audience(viewers, 6);
    await fanOutEvery(viewers, 1, 4);
    expect(readers.filter((r) => r.viewer.lastSent === at(4)).length).toBe(3);
    // A quarter of the gap after the next slice was due.
    await vi.advanceTimersByTimeAsync(15);
    expect(readers.every((r) => r.viewer.lastSent === at(4))).toBe(true);
    await closeAndRead(viewers, readers);
    for (const { chunks } of readers) expect(seqsOf(chunks)).toEqual(upTo(4));
  });

  it("sends the end after every line: those left waiting get their lines first", async () => {
    const viewers = new Viewers(paced, recordingLogger());
    const readers = audience(viewers, 6);
    await fanOutEvery(viewers, 1, 5);
    viewers.finishLive("ready", "5-0:0");
    await Promise.all(readers.map((r) => r.done));
    for (const { chunks } of readers) {
      expect(seqsOf(chunks)).toEqual(upTo(5));
      expect(chunks.join("")).toMatch(/data: line 5\n\n(.|\n)*event: done\n.*ready.*\n\n$/);
    }
  });

  it("writes to everyone at once at or under pacedFrom viewers, and without an interval", async () => {
    for (const options of [
      { ...paced, pacedFrom: 6 },
      { ...settings, maxViewers: 50 },
    ]) {
      const viewers = new Viewers(options, recordingLogger());
      expect(viewers.paced).toBe(false);
      const readers = audience(viewers, 6);
      for (let seq = 1; seq <= 6; seq++) {
        viewers.fanOut(slice(seq));
        expect(readers.every((r) => r.viewer.lastSent === at(seq))).toBe(true);
        await vi.advanceTimersByTimeAsync(50);
      }
      await closeAndRead(viewers, readers);
      for (const { chunks } of readers) expect(chunks.length - 1).toBe(6);
    }
  });

  it("writes a large slice (a backlog) to everyone at once, so nobody is sent several joined past its lag bound", async () => {
    const viewers = new Viewers({ ...paced, maxViewerLagBytes: 1024 * 1024 }, recordingLogger());
    expect(viewers.paced).toBe(false);
    const readers = audience(viewers, 6);
    expect(viewers.paced).toBe(true);
    viewers.fanOut(slice(1));
    await vi.advanceTimersByTimeAsync(50);
    viewers.fanOut(slice(2));
    await vi.advanceTimersByTimeAsync(50);
    viewers.fanOut(slice(3, "x".repeat(100 * 1024)));
    expect(readers.every((r) => r.viewer.lastSent === at(3))).toBe(true);
    await closeAndRead(viewers, readers);
    for (const { chunks } of readers) expect(seqsOf(chunks)).toEqual(upTo(2));
    for (const { chunks } of readers) expect(chunks.join("")).toContain("x".repeat(100 * 1024));
  });

  it("takes a viewer closed by a paced write out for good: it holds no place, and the rest get every line", async () => {
    const viewers = new Viewers({ ...paced, maxViewerLagBytes: 4096 }, recordingLogger());
    // One viewer never reads; its queue passes the 4 KiB bound within a dozen slices.
    const { viewer: stuck, response } = viewers.connect(new AbortController().signal);
    stuck.live = true;
    const readers = audience(viewers, 5);
    let seq = 0;
    while (!stuck.closed) {
      seq++;
      viewers.fanOut(slice(seq, `line ${seq} ${"x".repeat(300)}`));
      await vi.advanceTimersByTimeAsync(50);
    }
    expect(viewers.size).toBe(5);
    // Its reader drains what was queued, so its stream ends cleanly; it stays out.
    const drained = response.text();
    await vi.advanceTimersByTimeAsync(1_000);
    await drained;
    for (let more = 0; more < 4; more++) {
      viewers.fanOut(slice(++seq, `line ${seq} ${"x".repeat(300)}`));
      await vi.advanceTimersByTimeAsync(50);
    }
    expect(viewers.size).toBe(5);
    viewers.finishLive("ready", null);
    await Promise.all(readers.map((r) => r.done));
    expect(viewers.size).toBe(0);
    for (const { chunks } of readers) expect(seqsOf(chunks)).toEqual(upTo(seq));
  });

  it("after the timer wrote those waiting, gives the next slice first to the others, written longest ago", async () => {
    const viewers = new Viewers(paced, recordingLogger());
    const readers = audience(viewers, 6);
    await fanOutEvery(viewers, 1, 4);
    const waited = readers.filter((r) => r.viewer.lastSent !== at(4));
    expect(waited.length).toBe(3);
    // No slice for a while: the timer writes those three.
    await vi.advanceTimersByTimeAsync(20);
    expect(readers.every((r) => r.viewer.lastSent === at(4))).toBe(true);
    // Right after: the share its gap earned, those written longest ago first.
    viewers.fanOut(slice(5));
    const first = readers.filter((r) => r.viewer.lastSent === at(5));
    expect(first.length).toBeLessThan(6);
    for (const reader of readers) if (!waited.includes(reader)) expect(first).toContain(reader);
    // The rest within an interval.
    await vi.advanceTimersByTimeAsync(100);
    expect(readers.every((r) => r.viewer.lastSent === at(5))).toBe(true);
    await closeAndRead(viewers, readers);
    for (const { chunks } of readers) expect(seqsOf(chunks)).toEqual(upTo(5));
  });

  it("writes each viewer about once an interval however unevenly slices come, and every slice reaches everyone within the interval", async () => {
    const viewers = new Viewers(paced, recordingLogger());
    const readers = audience(viewers, 6);
    // Slices 20 to 110 ms apart, as pushes come when the object or the runner is busy: some
    // 85 slices over 5.6 s.
    const gaps = [20, 35, 50, 65, 80, 95, 110, 50, 40, 30, 90, 60];
    const arrivals = new Map<number, number>();
    const latest = new Map<number, number>();
    let elapsed = 0;
    let slices = 0;
    for (let seq = 1; elapsed < 5_600; seq++) {
      viewers.fanOut(slice(seq));
      slices = seq;
      arrivals.set(seq, Date.now());
      const gap = gaps[seq % gaps.length] ?? 50;
      // A millisecond at a time, to see when each viewer gets each slice.
      for (let ms = 0; ms < gap; ms++) {
        for (const { viewer } of readers) {
          const reached = Number(viewer.lastSent.split("-")[0]);
          for (const [sent, at] of arrivals) {
            if (sent > reached) break;
            latest.set(sent, Math.max(latest.get(sent) ?? 0, Date.now() - at));
          }
        }
        for (const sent of [...arrivals.keys()])
          if (readers.every((r) => Number(r.viewer.lastSent.split("-")[0]) >= sent))
            arrivals.delete(sent);
        await vi.advanceTimersByTimeAsync(1);
      }
      elapsed += gap;
    }
    await vi.advanceTimersByTimeAsync(200);
    await closeAndRead(viewers, readers);
    for (const { chunks } of readers) {
      expect(seqsOf(chunks)).toEqual(upTo(slices));
      // The retry frame, then about one write per 100 ms (56), a tenth more at most for slices
      // that came right after the timer wrote. A write per slice would be 85; shares of the
      // audience by the smoothed gap, as before, gave 74.
      expect(chunks.length - 1).toBeLessThanOrEqual(62);
    }
    expect(Math.max(...latest.values())).toBeLessThanOrEqual(101);
  });

  it("gives a viewer that goes live while others wait exactly the lines after its position", async () => {
    const viewers = new Viewers(paced, recordingLogger());
    const readers = audience(viewers, 6);
    for (let seq = 1; seq <= 12; seq++) {
      viewers.fanOut(slice(seq));
      if (seq === 7) {
        // As admit() hands over after a catch-up: live at the tail's position, some still
        // waiting for that slice.
        expect(readers.some((r) => r.viewer.lastSent !== at(7))).toBe(true);
        const [late] = audience(viewers, 1);
        if (late === undefined) throw new Error("no viewer");
        late.viewer.lastSent = at(7);
        readers.push(late);
      }
      await vi.advanceTimersByTimeAsync(50);
    }
    viewers.finishLive("ready", null);
    await Promise.all(readers.map((r) => r.done));
    for (const { chunks } of readers.slice(0, 6)) expect(seqsOf(chunks)).toEqual(upTo(12));
    expect(seqsOf(readers[6]?.chunks ?? [])).toEqual([8, 9, 10, 11, 12]);
  });

  it("writes to everyone at once when the slices waiting would pass a quarter of a small lag bound, so a viewer that reads is never closed", async () => {
    // A 4 KiB bound: two 1.5 KiB slices joined for a viewer left waiting would be 3 KiB in one
    // write, past a quarter of it.
    const viewers = new Viewers({ ...paced, maxViewerLagBytes: 4096 }, recordingLogger());
    const readers = audience(viewers, 6);
    for (let seq = 1; seq <= 10; seq++) {
      viewers.fanOut(slice(seq, `line ${seq} ${"x".repeat(1500)}`));
      expect(readers.every((r) => r.viewer.lastSent === at(seq))).toBe(true);
      await vi.advanceTimersByTimeAsync(50);
    }
    expect(readers.every((r) => !r.viewer.closed)).toBe(true);
    await closeAndRead(viewers, readers);
    for (const { chunks } of readers) expect(seqsOf(chunks)).toEqual(upTo(10));
  });

  it("sends a waiting viewer that was sent a slice another way only what it lacks", async () => {
    const viewers = new Viewers(paced, recordingLogger());
    const readers = audience(viewers, 6);
    await fanOutEvery(viewers, 1, 3);
    // One of those waiting for slice 3 was sent it another way (a catch-up from the ring).
    const waiting = readers.filter((r) => r.viewer.lastSent !== at(3));
    expect(waiting.length).toBe(3);
    const caughtUp = waiting[0];
    if (caughtUp === undefined) throw new Error("no viewer waits");
    viewers.sendText(caughtUp.viewer, slice(3).events.join(""));
    caughtUp.viewer.lastSent = at(3);
    viewers.fanOut(slice(4));
    await vi.advanceTimersByTimeAsync(100);
    await closeAndRead(viewers, readers);
    for (const { chunks } of readers) expect(seqsOf(chunks)).toEqual(upTo(4));
  });
});
