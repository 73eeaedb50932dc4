import { mkdir, readFile, stat } from "node:fs/promises";
import { createServer, type Server } from "node:http";
import { fileURLToPath } from "node:url";
import type { Page } from "playwright-core";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import type { LogLine } from "../../src/shared/entry.ts";
import type { JobSpec } from "../../src/shared/job-spec.ts";
import { closeServer, listenOnLoopback } from "../../tools/dev/listen.ts";
import { devSignInUrl, type Stack, startStack } from "../../tools/dev/stack.ts";
import { type Chromium, launchChromium } from "../support/chromium.ts";
import { type DropProxy, startDropProxy } from "../support/drop-proxy.ts";
import { createJob, recordsOwnedBy, streamWriter, testRedis } from "../support/jobs.ts";
import { uniqueJobId } from "../support/redis.ts";

const tscFixture = await readFile(
  new URL("../fixtures/colour/tsc-pretty.ansi", import.meta.url),
  "utf8",
);
const npmFixture = await readFile(
  new URL("../fixtures/colour/npm-missing-script.ansi", import.meta.url),
  "utf8",
);

// The log viewer page in Debian's chromium, against the whole system on loopback: redis-server
// behind the Upstash bridge, the Worker in local workerd, the runner with its local sandbox.
// Pages are opened through a proxy that can cut live streams (test/support/drop-proxy.ts).
// Lines come from a real job, or are appended in the runner's format straight to the stream.
// Screenshots are kept in test-results/browser/.
const RESULTS = fileURLToPath(new URL("../../test-results/browser/", import.meta.url));
const USER = "user_browser";
const WAIT = { timeout: 60_000, interval: 100 };

let stack: Stack;
let embedding: EmbeddingSite;
let proxy: DropProxy;
let chromium: Chromium;
let token = "";
let redis: ReturnType<typeof testRedis>;
const pages: Page[] = [];

interface EmbeddingSite {
  /** `http://localhost:PORT`: another origin (and site) than the Worker's 127.0.0.1. */
  readonly origin: string;
  close(): Promise<void>;
}

// Another site's page that follows a build with the ticket flow: asks for a ticket with its
// own Bearer token, then opens a plain cross-origin EventSource with ?ticket= (no cookie).
const EMBEDDING_PAGE = `<!doctype html><meta charset="utf-8"><title>Another site</title>
<script type="module">
const params = new URLSearchParams(location.hash.slice(1));
const api = params.get("api");
const job = params.get("job");
window.received = [];
window.events = [];
const response = await fetch(api + "/api/jobs/" + job + "/logs/ticket", { method: "POST", headers: { Authorization: "Bearer " + params.get("token") } });
window.ticketStatus = response.status;
const { ticket } = await response.json();
const source = new EventSource(api + "/api/jobs/" + job + "/logs/stream?after=0-0:0&ticket=" + encodeURIComponent(ticket));
source.addEventListener("open", () => window.events.push("open"));
source.addEventListener("error", () => window.events.push(source.readyState === EventSource.CONNECTING ? "reconnecting" : "closed"));
source.addEventListener("log", (event) => window.received.push(...JSON.parse(event.data).lines.map((line) => line.text)));
source.addEventListener("done", (event) => {
  window.done = JSON.parse(event.data).status;
  source.close();
});
</script>`;

async function startEmbeddingSite(): Promise<EmbeddingSite> {
  const server: Server = createServer((_request, response) => {
    response.writeHead(200, { "Content-Type": "text/html; charset=utf-8" }).end(EMBEDDING_PAGE);
  });
  const port = await listenOnLoopback(server, "the embedding site");
  return { origin: `http://localhost:${port}`, close: () => closeServer(server) };
}

// A local stand-in for Clerk's browser SDK (served as CLERK_JS_URL): `session.getToken()` gets
// a fresh session token from this test and stores it in the __session cookie through the
// development sign-in, the cookie refresh Clerk's SDK does. Signed in only where a test says so
// (localStorage), so a signed-out visitor stays signed out.
const SIGN_IN_URL = "https://accounts.example.com/sign-in";
const CLERK_STAND_IN = `
const standIn = new URL(document.currentScript.src).origin;
window.__clerkRefreshes = 0;
window.Clerk = {
  session: null,
  async load() {
    if (localStorage.getItem("clerk-stand-in") !== "signed-in") return;
    this.session = {
      async getToken() {
        const { token } = await (await fetch(standIn + "/token")).json();
        await fetch("/dev/sign-in?next=/healthz&token=" + encodeURIComponent(token), { credentials: "same-origin" });
        window.__clerkRefreshes += 1;
        return token;
      },
    };
  },
};`;

async function startClerkStandIn(): Promise<EmbeddingSite> {
  const server: Server = createServer((request, response) => {
    const headers = { "Access-Control-Allow-Origin": "*", "Cache-Control": "no-store" };
    if (request.url === "/token") {
      response.writeHead(200, { ...headers, "Content-Type": "application/json" });
      response.end(JSON.stringify({ token: stack.signToken(USER) }));
      return;
    }
    response.writeHead(200, { ...headers, "Content-Type": "text/javascript" }).end(CLERK_STAND_IN);
  });
  const port = await listenOnLoopback(server, "the Clerk stand-in");
  return { origin: `http://127.0.0.1:${port}`, close: () => closeServer(server) };
}
let clerkStandIn: EmbeddingSite;

beforeAll(async () => {
  embedding = await startEmbeddingSite();
  clerkStandIn = await startClerkStandIn();
  stack = await startStack({
    runnerOutput: "ignore",
    workerVars: {
      CORS_ORIGINS: embedding.origin,
      CLERK_SIGN_IN_URL: SIGN_IN_URL,
      // A publishable key for the Frontend API clerk.example.test; the SDK from the stand-in.
      CLERK_PUBLISHABLE_KEY: `pk_test_${btoa("clerk.example.test$")}`,
      CLERK_JS_URL: `${clerkStandIn.origin}/clerk.browser.js`,
    },
  });
  proxy = await startDropProxy(stack.workerUrl);
  chromium = await launchChromium();
  token = stack.signToken(USER);
  redis = testRedis({
    UPSTASH_REDIS_REST_URL: stack.bridge.url,
    UPSTASH_REDIS_REST_TOKEN: stack.bridge.token,
  });
  await mkdir(RESULTS, { recursive: true });
  // Signed in once, as npm start's link does it: the development sign-in sets __session.
  const page = await chromium.context.newPage();
  const landed = await page.goto(devSignInUrl(proxy.url, token, "/healthz"));
  expect(landed?.status()).toBe(200);
  expect(new URL(page.url()).pathname).toBe("/healthz");
  await page.close();
}, 180_000);

afterAll(async () => {
  await chromium?.close();
  await proxy?.close();
  await stack?.stop();
  await embedding?.close();
  await clerkStandIn?.close();
}, 60_000);

interface Viewer {
  readonly page: Page;
  /** Uncaught exceptions in the page. */
  readonly errors: string[];
  /** Paths the page requested. */
  readonly requests: string[];
  readonly dialogs: string[];
}

// Set up before the page's own script runs (through the DevTools protocol, not subject to CSP).
const RECORD_CSP_VIOLATIONS =
  "window.__cspViolations = []; document.addEventListener('securitypolicyviolation', (event) => window.__cspViolations.push(`${event.violatedDirective} ${event.blockedURI}`));";

async function openViewer(jobId: string): Promise<Viewer> {
  const page = await chromium.context.newPage();
  pages.push(page);
  const viewer: Viewer = { page, errors: [], requests: [], dialogs: [] };
  page.on("pageerror", (error) => viewer.errors.push(error.message));
  page.on("request", (request) => viewer.requests.push(new URL(request.url()).pathname));
  page.on("dialog", (dialog) => {
    viewer.dialogs.push(dialog.message());
    void dialog.dismiss();
  });
  await page.addInitScript({ content: RECORD_CSP_VIOLATIONS });
  const response = await page.goto(`${proxy.url}/jobs/${jobId}`);
  expect(response?.status()).toBe(200);
  return viewer;
}

afterEach(async () => {
  for (const page of pages.splice(0)) await page.close();
});

const countText = (page: Page): Promise<string | null> => page.locator("#count").textContent();
const statusOf = (page: Page): Promise<string | null> =>
  page.locator("#status").getAttribute("data-status");
const connectionOf = (page: Page): Promise<string | null> =>
  page.locator("#connection").getAttribute("data-state");
/** Lines the page holds: the log's canvas is one row per line while lines do not wrap. */
const loadedLines = (page: Page): Promise<number> =>
  page.evaluate(
    "Math.round(document.getElementById('canvas').offsetHeight / document.querySelector('#rows > div').offsetHeight)",
  ) as Promise<number>;
const linesText = (count: number): string =>
  `${count.toLocaleString("en-US")} ${count === 1 ? "line" : "lines"}`;

/** What a test reads of an element in the page (the Node side has no DOM types). */
interface ElementNode {
  readonly tagName: string;
  readonly textContent: string | null;
  readonly className: string;
  readonly style: { readonly color: string };
  getAttribute(name: string): string | null;
}

interface Row {
  readonly index: number;
  readonly text: string;
  readonly className: string;
}

/** The rows in the DOM right now (the window around what is on screen). */
function renderedRows(page: Page): Promise<Row[]> {
  // A step's header row is not a line.
  return page.locator("#rows > div:not(.step)").evaluateAll((rows) =>
    rows.map((row) => ({
      index: Number(row.dataset.index),
      text: row.querySelector(".text")?.textContent ?? "",
      className: row.className,
    })),
  );
}

/** The row of the line opened by its permalink (#L<n>), when it is on screen. */
async function targetRow(page: Page): Promise<{ text: string; kind: string | null } | undefined> {
  await nextFrames(page);
  const rows = await page.locator('#rows > div[data-target="true"]').evaluateAll((all) =>
    all.map((row) => ({
      text: row.querySelector(".text")?.textContent ?? "",
      kind: row.getAttribute("data-kind"),
    })),
  );
  return rows[0];
}

// The page's flood guard: while lines pour in, a render is put off until this long after the
// last one, by a timer and then a frame. Read from the page, so the two cannot drift apart.
const FLOOD_FRAME_MS = Number(
  /const FLOOD_FRAME_MS = (\d+);/.exec(
    await readFile(new URL("../../src/http/log-viewer.html", import.meta.url), "utf8"),
  )?.[1] ?? Number.NaN,
);
if (!Number.isInteger(FLOOD_FRAME_MS))
  throw new Error("log-viewer.html no longer declares `const FLOOD_FRAME_MS = <ms>;`");

/**
 * Resolves once the page has rendered what it holds: after any render it has queued, including
 * one the flood guard put off. A timer set now for the guard's interval fires after the page's
 * own (set earlier, due no later), and two frames after it come after the frame that timer asks
 * for. Ordering, not a guess at how long rendering takes: two frames alone missed a put-off
 * render when 101 lines came at once (CI: "200 lines" where the page had 301).
 */
function nextFrames(page: Page): Promise<unknown> {
  return page.evaluate(
    `new Promise((resolve) => setTimeout(() => requestAnimationFrame(() => requestAnimationFrame(resolve)), ${FLOOD_FRAME_MS}))`,
  );
}

function atBottom(page: Page): Promise<boolean> {
  return page
    .locator("#log")
    .evaluate((log) => log.scrollTop + log.clientHeight >= log.scrollHeight - 1);
}

/** Every line the page holds, read off the screen: scrolls from the top to the bottom. */
async function readAllRows(page: Page): Promise<Row[]> {
  const log = page.locator("#log");
  await log.evaluate((element) => {
    element.scrollTop = 0;
  });
  const rows: Row[] = [];
  for (let guard = 0; guard < 20_000; guard++) {
    await nextFrames(page);
    for (const row of await renderedRows(page)) rows[row.index] = row;
    const moved = await log.evaluate((element) => {
      const before = element.scrollTop;
      element.scrollTop = before + element.clientHeight;
      return element.scrollTop !== before;
    });
    if (!moved) break;
  }
  // Array.from turns holes (lines never shown) into undefined, which no expectation accepts.
  return Array.from(rows);
}

const readAllTexts = async (page: Page): Promise<(string | undefined)[]> =>
  (await readAllRows(page)).map((row) => row?.text);

async function screenshot(page: Page, name: string): Promise<string> {
  const path = `${RESULTS}${name}.png`;
  await page.screenshot({ path });
  expect((await stat(path)).size).toBeGreaterThan(5_000);
  return path;
}

async function newJob(label: string) {
  const jobId = uniqueJobId(label);
  await createJob(redis, jobId, USER);
  return { jobId, writer: streamWriter(redis, jobId) };
}

const BUILD_SCRIPT = `
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
for (let i = 1; i <= 40; i++) {
  console.log("compiling module " + i + " of 40");
  if (i % 10 === 0) console.error("warning: module " + i + " is large");
  await sleep(75);
}
console.log("build complete");
`;

describe("the log viewer in a browser", () => {
  it("shows a real build's lines as the runner writes them, stderr and system lines apart, then its status", async () => {
    const spec: Partial<JobSpec> = {
      files: {
        "package.json": '{"name":"browser-app","version":"1.0.0"}',
        "build.mjs": BUILD_SCRIPT,
      },
      steps: [
        { name: "Installing dependencies", phase: "install", command: "echo 'added 0 packages'" },
        { name: "Building", phase: "build", command: "node build.mjs" },
      ],
    };
    const created = await fetch(`${stack.workerUrl}/api/jobs`, {
      method: "POST",
      headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/json" },
      body: JSON.stringify(spec),
    });
    expect(created.status).toBe(201);
    const { id: jobId } = (await created.json()) as { id: string };
    const { page, errors } = await openViewer(jobId);

    // On screen while the build still runs: streamed as it was written, not loaded at the end.
    await expect
      .poll(
        async () =>
          (await renderedRows(page)).some((row) => row.text === "compiling module 5 of 40"),
        WAIT,
      )
      .toBe(true);
    expect(await statusOf(page)).not.toMatch(/^(ready|failed)$/);
    expect(await page.locator("#notice").textContent()).toBe("");

    await expect.poll(() => statusOf(page), WAIT).toBe("ready");
    expect(await page.locator("#status").textContent()).toBe("Build succeeded");
    expect(await page.locator("#notice").textContent()).toBe("The build finished successfully.");
    // It follows the end with the next frame (the page renders on requestAnimationFrame).
    await nextFrames(page);
    expect(await atBottom(page)).toBe(true);
    await screenshot(page, "live-build");

    // Every line the API has, once and in order, each styled by its source.
    const history: LogLine[] = [];
    let after = "0-0:0";
    for (let more = true; more; ) {
      const response = await fetch(
        `${stack.workerUrl}/api/jobs/${jobId}/logs?after=${after}&limit=500`,
        { headers: { Authorization: `Bearer ${token}` } },
      );
      const body = (await response.json()) as {
        lines: LogLine[];
        has_more: boolean;
        cursors: { after: string };
      };
      history.push(...body.lines);
      after = body.cursors.after;
      more = body.has_more;
    }
    // Each step is a section: both succeeded, so both are collapsed, with their time and lines.
    const headers = () =>
      page.locator("#rows .step").evaluateAll((all) =>
        all.map((row) => ({
          name: row.querySelector(".step-name")?.textContent,
          status: row.getAttribute("data-status"),
          expanded: row.querySelector("button")?.getAttribute("aria-expanded"),
          meta: row.querySelector(".step-meta")?.textContent,
        })),
      );
    await page.locator("#log").evaluate((log) => {
      log.scrollTop = 0;
    });
    await nextFrames(page);
    expect(await headers()).toEqual([
      {
        name: "Installing dependencies",
        status: "succeeded",
        expanded: "false",
        meta: expect.stringMatching(/^0:0\d · 3 lines$/),
      },
      {
        name: "Building",
        status: "succeeded",
        expanded: "false",
        meta: expect.stringMatching(/^0:0\d · 47 lines$/),
      },
    ]);
    // Opened, they show every line the API has.
    for (const step of [0, 1]) await page.locator(`.step-toggle[data-step="${step}"]`).click();
    await nextFrames(page);
    expect((await headers()).map((header) => header.expanded)).toEqual(["true", "true"]);
    const rows = await readAllRows(page);
    expect(rows.map((row) => row?.text)).toEqual(history.map((line) => line.text));
    expect(rows.map((row) => row?.className)).toEqual(history.map((line) => `line ${line.source}`));
    expect(history.map((line) => line.text)).toEqual(
      expect.arrayContaining(["--- Building ---", "warning: module 40 is large", "build complete"]),
    );
    expect(rows.find((row) => row?.text === "warning: module 10 is large")?.className).toBe(
      "line stderr",
    );
    expect(rows.find((row) => row?.text === "--- Building ---")?.className).toBe("line system");
    expect(await countText(page)).toBe(linesText(history.length));

    // The raw download link works with the page's cookie.
    const [download] = await Promise.all([
      page.waitForEvent("download"),
      page.locator("#download").click(),
    ]);
    expect(download.suggestedFilename()).toBe(`${jobId}.log`);
    const text = await readFile(await download.path(), "utf8");
    expect(text).toContain("compiling module 40 of 40");
    expect(text.trimEnd().split("\n")).toHaveLength(history.length);
    expect(errors).toEqual([]);
  });

  it.each([
    ["the connection is cut", "network"],
    ["the server closes the stream (as a deploy does)", "server"],
  ] as const)(
    "resumes by itself when %s mid-build: no line missing, none twice",
    async (_case, how) => {
      const { jobId, writer } = await newJob(`drop-${how}`);
      const { page, errors } = await openViewer(jobId);
      await expect.poll(() => connectionOf(page), WAIT).toBe("live");
      const expected: string[] = [];
      let lastCursor = "";
      const write = async (label: string, entries: number): Promise<void> => {
        for (let entry = 0; entry < entries; entry++) {
          const texts = Array.from({ length: 25 }, (_, i) => `${label} ${entry}.${i}`);
          const written = await writer.append(...texts);
          expected.push(...texts);
          lastCursor = written.cursors.at(-1) ?? lastCursor;
        }
      };
      await write("before the drop", 4);
      await expect.poll(() => countText(page), WAIT).toBe(linesText(100));
      const seenBeforeDrop = lastCursor;
      const streams = () =>
        proxy.streamRequests.filter((request) => request.path.startsWith(`/api/jobs/${jobId}/`));
      expect(streams()).toHaveLength(1);

      if (how === "network") {
        expect(proxy.dropStreams(`/api/jobs/${jobId}/`)).toBe(1);
      } else {
        const response = await fetch(`${stack.workerUrl}/internal/jobs/${jobId}/disconnect`, {
          method: "POST",
          headers: { Authorization: `Bearer ${stack.runnerToken}` },
        });
        expect(await response.json()).toEqual({ disconnected: 1 });
      }
      await expect.poll(() => connectionOf(page), WAIT).toBe("reconnecting");
      // Written while the browser is away (it waits the server's `retry:` hint, 2 s).
      await write("while disconnected", 4);
      await expect.poll(() => streams().length, WAIT).toBe(2);
      const [first, reconnect] = streams();
      // EventSource's own reconnect: the same URL, and the id of the last line it got.
      expect(reconnect?.path).toBe(first?.path);
      expect(reconnect?.lastEventId).toBe(seenBeforeDrop);
      await expect.poll(() => connectionOf(page), WAIT).toBe("live");
      await write("after the reconnect", 4);
      await writer.end("failed", "Building failed with exit code 2");
      expected.push("Building failed with exit code 2");

      await expect.poll(() => statusOf(page), WAIT).toBe("failed");
      expect(await page.locator("#notice").textContent()).toBe("The build failed.");
      // The status is set as `done` arrives; the count with the next frame (the page renders
      // on requestAnimationFrame), which a loaded machine can hold back past the status poll.
      await nextFrames(page);
      expect(await countText(page)).toBe(linesText(expected.length));
      expect(await readAllTexts(page)).toEqual(expected);
      expect(errors).toEqual([]);
    },
  );

  it("opens a build that already ended as ended: 'Took', no Cancel, no Follow", async () => {
    const created = await fetch(`${stack.workerUrl}/api/jobs`, {
      method: "POST",
      headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/json" },
      body: JSON.stringify({
        steps: [{ name: "Building", phase: "build", command: "echo done-before" }],
      } satisfies Partial<JobSpec>),
    });
    const { id } = (await created.json()) as { id: string };
    await expect
      .poll(async () => {
        const response = await fetch(`${stack.workerUrl}/api/jobs/${id}`, {
          headers: { Authorization: `Bearer ${token}` },
        });
        return ((await response.json()) as { status: string }).status;
      }, WAIT)
      .toBe("ready");
    const { page } = await openViewer(id);
    await expect.poll(() => statusOf(page), WAIT).toBe("ready");
    await expect
      .poll(() => page.locator("#elapsed").textContent(), WAIT)
      .toMatch(/^Took \d+:\d\d$/);
    expect(await page.locator("#cancel").isVisible()).toBe(false);
    expect(await page.locator("#follow").isVisible()).toBe(false);
  });

  it("cancels a running build from its Cancel button, and says so", async () => {
    const created = await fetch(`${stack.workerUrl}/api/jobs`, {
      method: "POST",
      headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/json" },
      body: JSON.stringify({
        steps: [
          {
            name: "Building",
            phase: "build",
            command: "echo started; while true; do echo working; sleep 0.5; done",
          },
        ],
      } satisfies Partial<JobSpec>),
    });
    expect(created.status).toBe(201);
    const { id: jobId } = (await created.json()) as { id: string };
    const { page, errors, dialogs } = await openViewer(jobId);
    await expect
      .poll(async () => (await renderedRows(page)).some((row) => row.text === "started"), WAIT)
      .toBe(true);
    const button = page.locator("#cancel");
    expect(await button.isVisible()).toBe(true);
    // The person confirms this time (the other tests dismiss every dialog).
    page.removeAllListeners("dialog");
    page.on("dialog", (dialog) => {
      dialogs.push(dialog.message());
      void dialog.accept();
    });
    await button.click();
    await expect.poll(() => statusOf(page), WAIT).toBe("cancelled");
    expect(dialogs).toEqual([
      "Cancel this build? Its commands are stopped and it cannot be resumed.",
    ]);
    expect(await page.locator("#status").textContent()).toBe("Build cancelled");
    expect(await page.locator("#notice").textContent()).toBe("The build was cancelled.");
    await expect
      .poll(async () => (await renderedRows(page)).at(-1)?.text, WAIT)
      .toBe(`The build was cancelled by ${USER}.`);
    expect(await button.isVisible()).toBe(false);
    expect(errors).toEqual([]);
    await screenshot(page, "cancelled-build");
  });

  it("shows printed HTML as text and never runs it", async () => {
    const { jobId, writer } = await newJob("html");
    const { page, errors, requests, dialogs } = await openViewer(jobId);
    await expect.poll(() => connectionOf(page), WAIT).toBe("live");
    const printed = [
      "<script>window.__pwned = 'script'</script>",
      `<img src=x onerror="window.__pwned = 'img'; alert('img')">`,
      "<svg onload=alert(1)><b>not bold</b> &amp; &lt;i&gt;",
      '"><iframe src="javascript:alert(2)"></iframe>',
    ];
    await writer.appendLines([
      { text: "before", source: "stdout" },
      ...printed.map((text) => ({ text, source: "stderr" as const })),
    ]);
    await expect.poll(() => countText(page), WAIT).toBe(linesText(printed.length + 1));
    await nextFrames(page);
    expect((await renderedRows(page)).map((row) => row.text)).toEqual(["before", ...printed]);
    expect(await page.locator("#log script, #log img, #log svg, #log b, #log iframe").count()).toBe(
      0,
    );
    expect(await page.evaluate("window.__pwned")).toBeUndefined();
    expect(await page.evaluate("window.__cspViolations")).toEqual([]);
    expect(dialogs).toEqual([]);
    expect(requests.filter((path) => path === "/x" || path.endsWith("/x"))).toEqual([]);
    await screenshot(page, "printed-html");
    expect(errors).toEqual([]);
  });

  it("renders a real build's FORCE_COLOR output as coloured spans, and no markup from escape codes", async () => {
    const hostile = [
      "\u001b[31m<img src=x onerror=\"window.__pwned='sgr'\">\u001b[0m red markup as text",
      "\u001b]8;;javascript:window.__pwned='osc'\u0007a javascript link\u001b]8;;\u0007 stays text",
      "\u001b]8;;https://example.com/docs\u0007an https link\u001b]8;;\u0007 kept",
      "\u001b[38;5;999mbad colour\u001b[0m \u001b[38;2;300;0;0mbad rgb\u001b[0m \u001b[1;4;9mflags\u001b[0m",
    ].join("\n");
    const spec: Partial<JobSpec> = {
      files: {
        "tsc.ansi": tscFixture,
        "npm.ansi": npmFixture,
        "hostile.ansi": `${hostile}\n`,
      },
      steps: [
        { name: "Printing colour", phase: "build", command: "cat tsc.ansi npm.ansi hostile.ansi" },
      ],
    };
    const created = await fetch(`${stack.workerUrl}/api/jobs`, {
      method: "POST",
      headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/json" },
      body: JSON.stringify(spec),
    });
    expect(created.status).toBe(201);
    const { id: jobId } = (await created.json()) as { id: string };
    const { page, errors, dialogs } = await openViewer(jobId);
    await expect.poll(() => statusOf(page), WAIT).toBe("ready");
    // The step succeeded, so its section is collapsed: opened, it shows its lines.
    await page.locator('.step-toggle[data-step="0"]').click();
    await nextFrames(page);
    const painted = (text: string) =>
      page
        .locator("#rows > div .text")
        .filter({ hasText: text })
        .first()
        .evaluate((element) =>
          [...element.childNodes].map((node) =>
            node.nodeType === 1
              ? ((el: ElementNode) => ({
                  tag: el.tagName.toLowerCase(),
                  text: el.textContent,
                  className: el.className,
                  color: el.style.color,
                  href: el.getAttribute("href"),
                }))(node as unknown as ElementNode)
              : { tag: "#text", text: node.textContent, className: "", color: "", href: null },
          ),
        );
    const tsc = await painted("TS2322");
    expect(
      tsc.filter((part) => part.tag === "span").map((part) => [part.text, part.className]),
    ).toEqual([
      ["bad.ts", "fg14"],
      ["1", "fg11"],
      ["7", "fg11"],
      ["error", "fg9"],
      [" TS2322: ", "fg8"],
    ]);
    const npm = await painted("Missing script");
    expect(npm.slice(0, 2)).toMatchObject([
      { tag: "span", text: "npm", className: "sgr-b" },
      { tag: "#text", text: " " },
    ]);
    // What was printed as markup is text; an OSC 8 link only when it is http(s).
    expect(await painted("red markup as text")).toMatchObject([
      { tag: "span", text: `<img src=x onerror="window.__pwned='sgr'">` },
      { tag: "#text", text: " red markup as text" },
    ]);
    const javascriptLink = await painted("a javascript link");
    expect(javascriptLink).toHaveLength(1);
    expect(javascriptLink[0]).toMatchObject({ tag: "#text", text: "a javascript link stays text" });
    expect(await painted("an https link")).toMatchObject([
      { tag: "a", text: "an https link", href: "https://example.com/docs" },
      { tag: "#text", text: " kept" },
    ]);
    const flags = await painted("flags");
    expect(flags.at(-1)).toMatchObject({ tag: "span", className: "sgr-b sgr-u sgr-x" });
    expect(await page.locator("#log img, #log script, #log [onerror]").count()).toBe(0);
    expect(await page.evaluate("window.__pwned")).toBeUndefined();
    expect(await page.evaluate("window.__cspViolations")).toEqual([]);
    expect(dialogs).toEqual([]);
    await screenshot(page, "colour");
    expect(errors).toEqual([]);
  });

  it("follows the tail until the person scrolls up, and follows again from the button", async () => {
    const { jobId, writer } = await newJob("follow");
    const { page } = await openViewer(jobId);
    await expect.poll(() => connectionOf(page), WAIT).toBe("live");
    await writer.append(...Array.from({ length: 200 }, (_, i) => `tail ${i}`));
    await expect.poll(() => countText(page), WAIT).toBe(linesText(200));
    await nextFrames(page);
    expect(await atBottom(page)).toBe(true);
    expect(await page.locator("#follow").isHidden()).toBe(true);

    await page.mouse.move(640, 400);
    await page.mouse.wheel(0, -600);
    await expect.poll(() => page.locator("#follow").isVisible(), WAIT).toBe(true);
    // Where the (possibly smooth) wheel scroll comes to rest.
    const scrollTop = () => page.locator("#log").evaluate((log) => log.scrollTop);
    let readingAt = -1;
    await expect
      .poll(async () => {
        const previous = readingAt;
        await page.waitForTimeout(100);
        readingAt = await scrollTop();
        return readingAt === previous;
      }, WAIT)
      .toBe(true);
    expect(readingAt).toBeGreaterThan(0);
    await writer.append(...Array.from({ length: 100 }, (_, i) => `tail ${200 + i}`));
    await expect.poll(() => countText(page), WAIT).toBe(linesText(300));
    await nextFrames(page);
    expect(await scrollTop()).toBe(readingAt);
    expect(await page.locator("#follow").textContent()).toBe("↓ Follow new lines (100 new)");

    await page.locator("#follow").click();
    await expect.poll(() => atBottom(page), WAIT).toBe(true);
    expect(await page.locator("#follow").isHidden()).toBe(true);
    expect((await renderedRows(page)).at(-1)?.text).toBe("tail 299");
    await writer.append("tail 300");
    await expect.poll(async () => (await renderedRows(page)).at(-1)?.text, WAIT).toBe("tail 300");
    expect(await atBottom(page)).toBe(true);
  });

  it("loads earlier lines page by page through the history route", async () => {
    const { jobId, writer } = await newJob("earlier");
    const all = Array.from({ length: 1_200 }, (_, i) => `history ${i + 1}`);
    for (let i = 0; i < all.length; i += 100) await writer.append(...all.slice(i, i + 100));
    const { page, errors } = await openViewer(jobId);
    // The header counts the whole log, not the page loaded.
    await expect.poll(() => countText(page), WAIT).toBe(linesText(1_200));
    await expect.poll(() => loadedLines(page), WAIT).toBe(500);
    const loadEarlier = page.locator("#load-earlier");
    expect(await loadEarlier.isVisible()).toBe(true);
    // The toolbar appearing above the log does not stop following the tail.
    await nextFrames(page);
    expect(await page.locator("#follow").isHidden()).toBe(true);
    expect(await atBottom(page)).toBe(true);
    await loadEarlier.click();
    await expect.poll(() => loadedLines(page), WAIT).toBe(1_000);
    await loadEarlier.click();
    await expect.poll(() => loadedLines(page), WAIT).toBe(1_200);
    await nextFrames(page); // the button's state comes with the render
    expect(await loadEarlier.isHidden()).toBe(true);
    await writer.append("live after history");
    await expect.poll(() => countText(page), WAIT).toBe(linesText(1_201));
    await expect
      .poll(async () => (await renderedRows(page)).at(-1)?.text, WAIT)
      .toBe("live after history");
    expect(await atBottom(page)).toBe(true);
    expect(await readAllTexts(page)).toEqual([...all, "live after history"]);
    expect(errors).toEqual([]);
  });

  it("stays responsive with 100,000 lines: only the rows on screen are in the DOM", async () => {
    const { jobId, writer } = await newJob("100k");
    const { page, errors } = await openViewer(jobId);
    await expect.poll(() => connectionOf(page), WAIT).toBe("live");
    const domSizeEmpty = await page.locator("*").count();
    // 200 entries of 500 lines, about as fast as a noisy build prints them.
    for (let entry = 0; entry < 200; entry++) {
      await writer.append(
        ...Array.from(
          { length: 500 },
          (_, i) => `line ${entry * 500 + i + 1} of a very noisy build`,
        ),
      );
      if (entry % 5 === 4) await new Promise((resolve) => setTimeout(resolve, 50));
    }
    await expect
      .poll(() => countText(page), { timeout: 120_000, interval: 250 })
      .toBe(linesText(100_000));
    await nextFrames(page);
    const rowsAtEnd = await renderedRows(page);
    expect(rowsAtEnd.at(-1)?.text).toBe("line 100000 of a very noisy build");
    // 720 px of 18 px rows is 40 on screen, plus 20 above and below.
    expect(rowsAtEnd.length).toBeLessThanOrEqual(80);
    expect(await page.locator("*").count()).toBeLessThanOrEqual(domSizeEmpty + 3 * 80);

    // Anywhere in the log, the window shows the right lines.
    await page.locator("#log").evaluate((log) => {
      log.scrollTop = log.scrollHeight / 2;
    });
    await nextFrames(page);
    const middle = await renderedRows(page);
    expect(middle.length).toBeLessThanOrEqual(80);
    expect(middle[0]?.index).toBeGreaterThan(45_000);
    expect(middle.every((row) => row.text === `line ${row.index + 1} of a very noisy build`)).toBe(
      true,
    );
    await screenshot(page, "100k-lines");

    // Still live and still following on request.
    await page.locator("#follow").click();
    await writer.append("line 100001 of a very noisy build");
    await expect
      .poll(async () => (await renderedRows(page)).at(-1)?.text, WAIT)
      .toBe("line 100001 of a very noisy build");
    expect(await page.locator("#rows > div").count()).toBeLessThanOrEqual(80);
    expect(errors).toEqual([]);
  });

  it("follows a build from another site with a stream ticket, across a dropped connection", async () => {
    const { jobId, writer } = await newJob("ticket");
    const page = await chromium.context.newPage();
    pages.push(page);
    const hash = new URLSearchParams({ api: proxy.url, job: jobId, token });
    await page.goto(`${embedding.origin}/#${hash}`);
    await expect.poll(() => page.evaluate("window.events.includes('open')"), WAIT).toBe(true);
    expect(await page.evaluate("window.ticketStatus")).toBe(200);
    const expected: string[] = [];
    let lastCursor = "";
    const write = async (label: string): Promise<void> => {
      const texts = Array.from({ length: 30 }, (_, i) => `${label} ${i}`);
      lastCursor = (await writer.append(...texts)).cursors.at(-1) ?? lastCursor;
      expected.push(...texts);
    };
    await write("first");
    await expect.poll(() => page.evaluate("window.received.length"), WAIT).toBe(30);
    const seenBeforeDrop = lastCursor;
    const streams = () =>
      proxy.streamRequests.filter((request) => request.path.startsWith(`/api/jobs/${jobId}/`));

    expect(proxy.dropStreams(`/api/jobs/${jobId}/`)).toBe(1);
    await write("while disconnected");
    // The browser reconnects on its own, to the same URL (so with the same ticket) and with
    // Last-Event-ID, which makes it a CORS-preflighted request.
    await expect.poll(() => streams().length, WAIT).toBe(2);
    const [first, reconnect] = streams();
    expect(reconnect?.path).toBe(first?.path);
    expect(reconnect?.path).toContain("ticket=");
    expect(reconnect?.lastEventId).toBe(seenBeforeDrop);
    await write("after the reconnect");
    await writer.end("ready");
    await expect.poll(() => page.evaluate("window.done"), WAIT).toBe("ready");
    expect(await page.evaluate("window.received")).toEqual(expected);
    expect(await page.evaluate("window.events")).toEqual(["open", "reconnecting", "open"]);
  });

  it("tells a person who is not signed in to sign in, and shows no log", async () => {
    const { jobId, writer } = await newJob("signed-out");
    await writer.append("secret-looking line");
    // Signed out for this test only: the cookie goes, and comes back after.
    const cookies = await chromium.context.cookies();
    await chromium.context.clearCookies();
    try {
      const { page: signedOut } = await openViewer(jobId);
      await expect
        .poll(() => signedOut.locator("#notice").textContent(), WAIT)
        .toMatch(/not signed in/);
      expect(await signedOut.locator("#rows > div").count()).toBe(0);
      // A way to sign in that comes back to this page.
      const href = (await signedOut.locator("#sign-in").getAttribute("href")) ?? "";
      expect(href.startsWith(`${SIGN_IN_URL}?`)).toBe(true);
      expect(new URL(href).searchParams.get("redirect_url")).toBe(signedOut.url());
      expect(await signedOut.locator("#sign-in").textContent()).toBe("Sign in to see this build");
      // The stand-in SDK was loaded (the CSP allows it) but has no session to refresh.
      expect(await signedOut.evaluate("window.__clerkRefreshes")).toBe(0);
      expect(await signedOut.evaluate("window.__cspViolations")).toEqual([]);
    } finally {
      await chromium.context.addCookies(cookies);
    }
  });
});

describe("the founder's build page", () => {
  it("says a failed build failed at the top: the step, its exit code and the first errors, linked", async () => {
    const { jobId, writer } = await newJob("failed-summary");
    const { page, errors } = await openViewer(jobId);
    await expect.poll(() => connectionOf(page), WAIT).toBe("live");
    expect(await page.locator("#status").textContent()).toBe("Building...");
    await writer.appendLines([
      { text: "--- Installing dependencies ---", source: "system" },
      { text: "npm warn deprecated inflight@1.0.6: not supported", source: "stderr" },
      { text: "added 120 packages in 3s" },
      { text: "--- Building ---", source: "system" },
    ]);
    await writer.append(...Array.from({ length: 600 }, (_, i) => `compiling module ${i}`));
    await writer.appendLines([
      {
        text: "src/app.ts(3,7): error TS2322: Type 'string' is not assignable to type 'number'.",
        source: "stderr",
      },
      { text: "npm ERR! code ELIFECYCLE", source: "stderr" },
    ]);
    await writer.end("failed", "Building failed with exit code 2");
    await expect.poll(() => statusOf(page), WAIT).toBe("failed");
    expect(await page.locator("#status").textContent()).toBe("Build failed");
    await expect.poll(() => page.locator("#failure-errors a").count(), WAIT).toBe(2);
    expect(await page.locator("#failure").isVisible()).toBe(true);
    expect(await page.locator("#failure-step").textContent()).toBe(
      "The step “Building” failed with exit code 2.",
    );
    const links = await page
      .locator("#failure-errors a")
      .evaluateAll((anchors) => anchors.map((a) => [a.getAttribute("href"), a.textContent]));
    expect(links).toEqual([
      [
        "#L605",
        "605: src/app.ts(3,7): error TS2322: Type 'string' is not assignable to type 'number'.",
      ],
      ["#L606", "606: npm ERR! code ELIFECYCLE"],
    ]);
    // Nothing live is left to follow.
    expect(await page.locator("#follow").isHidden()).toBe(true);
    expect(await page.locator("#announcer").textContent()).toContain("Build failed");
    expect(await page.locator("#log").getAttribute("role")).toBe("log");

    // The link opens its line, highlighted as an error; the warning has its own colour.
    await page.locator("#log").evaluate((log) => {
      log.scrollTop = 0;
    });
    await page.locator("#failure-errors a").first().click();
    await expect
      .poll(async () => (await targetRow(page))?.text, WAIT)
      .toBe("src/app.ts(3,7): error TS2322: Type 'string' is not assignable to type 'number'.");
    expect((await targetRow(page))?.kind).toBe("error");
    await page.locator("#log").evaluate((log) => {
      log.scrollTop = 0;
    });
    await nextFrames(page);
    const rows = await page
      .locator("#rows > div")
      .evaluateAll((all) =>
        all.map((row) => [row.querySelector(".ln")?.textContent, row.getAttribute("data-kind")]),
      );
    expect(rows.slice(0, 3)).toEqual([
      ["1", null],
      ["2", "warning"],
      ["3", null],
    ]);
    const colours = await page.evaluate(`(() => {
      const colour = (n) => getComputedStyle(document.querySelector('#rows > div:nth-child(' + n + ') .text')).color;
      return [colour(2), colour(3)];
    })()`);
    expect(new Set(colours as string[]).size).toBe(2);
    await screenshot(page, "failed-build");
    expect(errors).toEqual([]);
  });

  it("shows each step as a section: the running one open, passed ones collapsed, the failed one open and named on top", async () => {
    const { jobId, writer } = await newJob("steps");
    const { page, errors } = await openViewer(jobId);
    await expect.poll(() => connectionOf(page), WAIT).toBe("live");
    const header = (step: number) => page.locator(`#rows .step[data-step="${step}"]`);
    const toggle = (step: number) => page.locator(`.step-toggle[data-step="${step}"]`);
    const shownTexts = async () => (await renderedRows(page)).map((row) => row.text);
    const install = { i: 0, name: "Installing dependencies" } as const;
    const build = { i: 1, name: "Building" } as const;
    await writer.appendLines([
      {
        text: "--- Installing dependencies ---",
        source: "system",
        step: { ...install, event: "start" },
      },
      { text: "npm warn deprecated inflight@1.0.6: not supported", source: "stderr" },
      { text: "added 120 packages in 3s" },
    ]);
    // Running: open, its lines shown as they come.
    await expect.poll(() => header(0).getAttribute("data-status"), WAIT).toBe("running");
    expect(await toggle(0).getAttribute("aria-expanded")).toBe("true");
    expect(await header(0).locator(".step-status").textContent()).toBe("running");
    await expect.poll(shownTexts, WAIT).toContain("added 120 packages in 3s");

    const passed = { ...install, event: "end", status: "succeeded", exit: 0, ms: 2_500 } as const;
    await writer.appendLines([
      { text: "Installing dependencies succeeded in 2.5 s", source: "system", step: passed },
      { text: "--- Building ---", source: "system", step: { ...build, event: "start" } },
    ]);
    // Passed: collapsed to its header, with its time and line count; the next step is open.
    await expect.poll(() => toggle(0).getAttribute("aria-expanded"), WAIT).toBe("false");
    expect(await header(0).locator(".step-meta").textContent()).toBe("0:02 · 4 lines");
    expect(await header(0).locator(".icon").textContent()).toBe("✓");
    expect(await shownTexts()).not.toContain("added 120 packages in 3s");
    expect(await toggle(1).getAttribute("aria-expanded")).toBe("true");
    await expect
      .poll(async () => (await page.locator("#announcer").textContent()) ?? "", WAIT)
      .toContain("Installing dependencies: succeeded.");

    await writer.append(...Array.from({ length: 600 }, (_, i) => `compiling module ${i}`));
    await writer.appendLines([
      { text: "src/app.ts(3,7): error TS2322: Type 'string' is not assignable.", source: "stderr" },
      {
        text: "Building failed with exit code 2",
        source: "system",
        step: { ...build, event: "end", status: "failed", exit: 2, ms: 61_000 },
      },
    ]);
    await writer.end("failed");
    await expect.poll(() => statusOf(page), WAIT).toBe("failed");
    // The failed step stays open, and the summary on top names it and links to it.
    await page.locator("#log").evaluate((log) => {
      log.scrollTop = 0;
    });
    await nextFrames(page);
    expect(await header(1).getAttribute("data-status")).toBe("failed");
    expect(await toggle(1).getAttribute("aria-expanded")).toBe("true");
    expect(await header(1).locator(".step-meta").textContent()).toBe("1:01 · 603 lines");
    await expect
      .poll(() => page.locator("#failure-step").textContent(), WAIT)
      .toBe("The step “Building” failed with exit code 2. Show the step");
    expect(await page.locator("#failure-step-link").getAttribute("href")).toBe("#L607");
    await page.locator("#failure-step-link").click();
    await expect
      .poll(async () => (await targetRow(page))?.text, WAIT)
      .toBe("Building failed with exit code 2");

    // The keyboard opens and closes a section, and keeps the focus on its header.
    await page.locator("#log").evaluate((log) => {
      log.scrollTop = 0;
    });
    await nextFrames(page);
    await toggle(0).focus();
    await page.keyboard.press("Enter");
    await expect.poll(() => toggle(0).getAttribute("aria-expanded"), WAIT).toBe("true");
    await expect.poll(shownTexts, WAIT).toContain("added 120 packages in 3s");
    expect(await page.evaluate("document.activeElement?.dataset.step")).toBe("0");
    await page.keyboard.press("Space");
    await expect.poll(() => toggle(0).getAttribute("aria-expanded"), WAIT).toBe("false");
    expect(await shownTexts()).not.toContain("added 120 packages in 3s");
    expect(await page.evaluate("document.activeElement?.dataset.step")).toBe("0");
    await screenshot(page, "steps");

    // A permalink to a line of a collapsed step opens the step at that line.
    await page.evaluate("location.hash = '#L3'");
    await expect
      .poll(async () => (await targetRow(page))?.text, WAIT)
      .toBe("added 120 packages in 3s");
    expect(await toggle(0).getAttribute("aria-expanded")).toBe("true");
    expect(errors).toEqual([]);
  });

  it("searches the whole log through the server and jumps to a line that was not loaded", async () => {
    const { jobId, writer } = await newJob("search");
    for (let entry = 0; entry < 6; entry++)
      await writer.append(
        ...Array.from({ length: 500 }, (_, i) =>
          entry * 500 + i === 42 ? "the needle is here" : `hay ${entry * 500 + i}`,
        ),
      );
    const { page, errors } = await openViewer(jobId);
    await expect.poll(() => countText(page), WAIT).toBe(linesText(3_000));
    await page.locator("#search-input").fill("NEEDLE");
    await page.locator("#search-input").press("Enter");
    await expect.poll(() => page.locator("#search-results a").count(), WAIT).toBe(1);
    expect(await page.locator("#search-summary").textContent()).toBe("1 line with “NEEDLE”.");
    await page.locator("#search-results a").click();
    await expect.poll(async () => (await targetRow(page))?.text, WAIT).toBe("the needle is here");
    expect(new URL(page.url()).hash).toBe("#L43");
    await page.locator("#search-input").fill("nothing like this");
    await page.locator("#search-input").press("Enter");
    await expect
      .poll(() => page.locator("#search-summary").textContent(), WAIT)
      .toBe("No line contains “nothing like this”.");
    expect(errors).toEqual([]);
  });

  it("opens a permalink 55,000 lines back from history, then goes back to the live end", async () => {
    const { jobId, writer } = await newJob("permalink");
    for (let entry = 0; entry < 120; entry++)
      await writer.append(
        ...Array.from({ length: 500 }, (_, i) => `numbered line ${entry * 500 + i + 1}`),
      );
    const page = await chromium.context.newPage();
    pages.push(page);
    const errors: string[] = [];
    page.on("pageerror", (error) => errors.push(error.message));
    await page.goto(`${proxy.url}/jobs/${jobId}#L5000`);
    await expect.poll(async () => (await targetRow(page))?.text, WAIT).toBe("numbered line 5000");
    expect(await countText(page)).toBe(linesText(60_000));
    expect(await page.locator("#to-end").isVisible()).toBe(true);
    expect(await page.locator("#load-earlier").isVisible()).toBe(true);
    expect(await page.locator("#follow").isHidden()).toBe(true);
    await screenshot(page, "permalink");
    await page.locator("#to-end").click();
    await expect.poll(() => connectionOf(page), WAIT).toBe("live");
    await writer.append("numbered line 60001");
    await expect
      .poll(async () => (await renderedRows(page)).at(-1)?.text, WAIT)
      .toBe("numbered line 60001");
    expect(await countText(page)).toBe(linesText(60_001));
    expect(errors).toEqual([]);
  });

  it("wraps long lines on a narrow screen, follows the colour scheme, shows keyboard focus", async () => {
    const { jobId, writer } = await newJob("layout");
    await writer.appendLines([
      { text: "--- Building ---", source: "system" },
      { text: `a long line ${"that goes on and on ".repeat(20)}and ends here` },
      { text: "warning: a chunk is large", source: "stderr" },
      { text: "Error: Cannot find module 'left-pad'", source: "stderr" },
      { text: "done" },
    ]);
    await writer.end("failed", "Building failed with exit code 1");
    const { page, errors } = await openViewer(jobId);
    await expect.poll(() => statusOf(page), WAIT).toBe("failed");
    await expect.poll(() => page.locator("#failure-errors a").count(), WAIT).toBe(1);
    const background = () =>
      page.evaluate("getComputedStyle(document.body).backgroundColor") as Promise<string>;
    const logScrollsSideways = () =>
      page.locator("#log").evaluate((log) => log.scrollWidth > log.clientWidth + 1);
    const longRowHeight = () =>
      page
        .locator("#rows > div")
        .filter({ hasText: "a long line" })
        .evaluate((row) => row.getBoundingClientRect().height);

    // Desktop: one row per line, the long one scrolls sideways; wrapping on request.
    await nextFrames(page); // the rows come with the render
    expect(await page.locator("#wrap").getAttribute("aria-pressed")).toBe("false");
    expect(await logScrollsSideways()).toBe(true);
    for (const scheme of ["light", "dark"] as const) {
      await page.emulateMedia({ colorScheme: scheme });
      await nextFrames(page);
      await screenshot(page, `desktop-${scheme}`);
    }
    await page.emulateMedia({ colorScheme: "light" });
    const light = await background();
    await page.emulateMedia({ colorScheme: "dark" });
    const dark = await background();
    expect(light).toBe("rgb(255, 255, 255)");
    expect(dark).not.toBe(light);
    await page.locator("#wrap").click();
    await nextFrames(page);
    expect(await page.locator("#wrap").getAttribute("aria-pressed")).toBe("true");
    expect(await logScrollsSideways()).toBe(false);
    expect(await longRowHeight()).toBeGreaterThan(18);

    // 390 px (a phone): wrapping by default, nothing clipped off the edge.
    const phone = await chromium.context.newPage();
    pages.push(phone);
    await phone.setViewportSize({ width: 390, height: 844 });
    await phone.goto(`${proxy.url}/jobs/${jobId}`);
    await expect.poll(() => statusOf(phone), WAIT).toBe("failed");
    await expect.poll(() => phone.locator("#failure-errors a").count(), WAIT).toBe(1);
    expect(await phone.locator("#wrap").getAttribute("aria-pressed")).toBe("true");
    expect(
      await phone.locator("#log").evaluate((log) => log.scrollWidth > log.clientWidth + 1),
    ).toBe(false);
    expect(await phone.evaluate("document.documentElement.scrollWidth <= window.innerWidth")).toBe(
      true,
    );
    // The wrapped line's row is as tall as its text: nothing cut off at the bottom either.
    await nextFrames(phone);
    const fit = await phone
      .locator("#rows > div")
      .filter({ hasText: "a long line" })
      .evaluate((row) => {
        const text = row.querySelector(".text");
        return [text?.scrollHeight ?? 0, row.getBoundingClientRect().height];
      });
    expect(fit[0]).toBeGreaterThan(18 * 4);
    expect(fit[0]).toBeLessThanOrEqual((fit[1] ?? 0) + 1);
    for (const scheme of ["light", "dark"] as const) {
      await phone.emulateMedia({ colorScheme: scheme });
      await nextFrames(phone);
      await screenshot(phone, `mobile-${scheme}`);
    }

    // Keyboard focus is visible: the search box, then the buttons, by Tab.
    await page.locator("body").click({ position: { x: 5, y: 5 } });
    await page.keyboard.press("Tab");
    const focused = await page.evaluate(
      "(() => { const e = document.activeElement; const s = getComputedStyle(e); return [e.id, s.outlineStyle, s.outlineWidth]; })()",
    );
    expect(focused).toEqual([expect.any(String), "solid", "3px"]);
    expect(errors).toEqual([]);
  });

  it("wraps lines of wide characters (CJK, emoji) with nothing cut off and no blank rows", async () => {
    const { jobId, writer } = await newJob("wide");
    const texts = [
      `漢字の行 ${"中文字符和日本語のかな、한국어 ".repeat(12)}終わり`,
      `emoji ${"🚀✅🎉 ".repeat(40)}end`,
      `mixed ascii and 漢字 ${"build 完成 ✨ ok ".repeat(20)}end`,
      `accents e\u0301 ${"cafe\u0301 ".repeat(60)}end`,
    ];
    await writer.appendLines(texts.map((text) => ({ text })));
    await writer.end("ready");
    const phone = await chromium.context.newPage();
    pages.push(phone);
    await phone.setViewportSize({ width: 390, height: 844 });
    await phone.goto(`${proxy.url}/jobs/${jobId}`);
    await expect.poll(() => statusOf(phone), WAIT).toBe("ready");
    expect(await phone.locator("#wrap").getAttribute("aria-pressed")).toBe("true");
    await nextFrames(phone);
    // Each row as tall as its wrapped text: not shorter (text cut off), nor a row taller.
    // The text's own lines (a range over it), not its box, which the row stretches.
    const fits =
      (await phone.evaluate(`[...document.querySelectorAll("#rows > div:not(.step)")].map((row) => {
      const text = row.querySelector(".text");
      const range = document.createRange();
      range.selectNodeContents(text);
      return {
        text: text.textContent.slice(0, 12),
        textHeight: range.getBoundingClientRect().height,
        rowHeight: row.getBoundingClientRect().height,
      };
    })`)) as { text: string; textHeight: number; rowHeight: number }[];
    expect(fits).toHaveLength(texts.length);
    for (const fit of fits) {
      expect(fit.textHeight, fit.text).toBeGreaterThan(18 * 3);
      expect(fit.textHeight, fit.text).toBeLessThanOrEqual(fit.rowHeight + 1);
      expect(fit.rowHeight - fit.textHeight, fit.text).toBeLessThan(18);
    }
    await screenshot(phone, "wide-characters");
  });

  it("names the build, counts its time, and keeps the __session cookie fresh through the Clerk SDK", async () => {
    const spec: Partial<JobSpec> = {
      title: "Deploy the demo app",
      files: { "package.json": '{"name":"titled","version":"1.0.0"}' },
      steps: [{ name: "Building", phase: "build", command: "echo built" }],
    };
    const created = await fetch(`${stack.workerUrl}/api/jobs`, {
      method: "POST",
      headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/json" },
      body: JSON.stringify(spec),
    });
    const { id } = (await created.json()) as { id: string };
    const titled = await openViewer(id);
    await expect
      .poll(() => titled.page.locator("#title").textContent(), WAIT)
      .toBe("Deploy the demo app");
    await expect.poll(() => statusOf(titled.page), WAIT).toBe("ready");
    expect(await titled.page.locator("#status").textContent()).toBe("Build succeeded");
    await expect
      .poll(() => titled.page.locator("#elapsed").textContent(), WAIT)
      .toMatch(/^Took \d+:\d\d$/);

    // A session that ends while the build streams: the stand-in SDK renews the cookie when the
    // stream's reconnect is refused, and the page goes on live.
    const { jobId, writer } = await newJob("refresh");
    const cookies = await chromium.context.cookies();
    const shortToken = stack.signToken(USER, 8);
    const signIn = await chromium.context.newPage();
    pages.push(signIn);
    await signIn.goto(devSignInUrl(proxy.url, shortToken, "/healthz"));
    await signIn.evaluate("localStorage.setItem('clerk-stand-in', 'signed-in')");
    try {
      const { page, errors } = await openViewer(jobId);
      await expect.poll(() => connectionOf(page), WAIT).toBe("live");
      await writer.append("before the session ended");
      await expect.poll(() => countText(page), WAIT).toBe(linesText(1));
      // Until the short session is refused (its expiry, plus Clerk's clock skew allowance).
      await expect
        .poll(
          async () =>
            (
              await fetch(`${stack.workerUrl}/api/jobs/${jobId}`, {
                headers: { Authorization: `Bearer ${shortToken}` },
              })
            ).status,
          WAIT,
        )
        .toBe(401);
      expect(proxy.dropStreams(`/api/jobs/${jobId}/`)).toBe(1);
      await expect.poll(() => page.evaluate("window.__clerkRefreshes"), WAIT).toBeGreaterThan(0);
      await expect.poll(() => connectionOf(page), WAIT).toBe("live");
      await writer.append("after the refresh");
      await expect
        .poll(async () => (await renderedRows(page)).at(-1)?.text, WAIT)
        .toBe("after the refresh");
      expect(await page.locator("#notice").textContent()).toBe("");
      expect(await page.evaluate("window.__cspViolations")).toEqual([]);
      expect(errors).toEqual([]);
    } finally {
      await signIn.evaluate("localStorage.removeItem('clerk-stand-in')");
      await chromium.context.clearCookies();
      await chromium.context.addCookies(cookies);
    }
    // It waits out a real session's expiry (8 s plus Clerk's clock-skew allowance): on a loaded
    // machine that takes more than the default minute.
  }, 180_000);
});

// A page on another origin of the same site (another port of 127.0.0.1: cookies are per host,
// and SameSite=Lax lets same-site requests carry them) tries to make the signed-in person's
// browser create a job with their __session cookie, the two ways that need no preflight.
const ATTACK_PAGE = `<!doctype html><meta charset="utf-8"><title>Same site, other origin</title>
<iframe name="sink"></iframe>
<form method="POST" enctype="text/plain" target="sink">
<input name='{"steps":[{"name":"Steal","phase":"build","command":"env ' value=' "}]}'>
</form>
<script type="module">
const api = new URLSearchParams(location.hash.slice(1)).get("api");
const form = document.querySelector("form");
form.action = api + "/api/jobs";
const frame = document.querySelector("iframe");
const posted = new Promise((resolve) => frame.addEventListener("load", resolve, { once: true }));
form.submit();
await posted;
const body = '{"steps":[{"name":"Steal","phase":"build","command":"env"}]}';
const fetched = await fetch(api + "/api/jobs", { method: "POST", mode: "no-cors", credentials: "include", body });
window.attack = { formDone: true, fetchType: fetched.type };
</script>`;

describe("cross-site request forgery in a browser", () => {
  it("a page on another origin of the same site cannot create a job with the cookie", async () => {
    const attacker = createServer((_request, response) => {
      response.writeHead(200, { "Content-Type": "text/html; charset=utf-8" }).end(ATTACK_PAGE);
    });
    const attackerPort = await listenOnLoopback(attacker, "the attacker's site");
    const ownedJobs = () => recordsOwnedBy(redis, USER);
    try {
      const before = await ownedJobs();
      const page = await chromium.context.newPage();
      pages.push(page);
      const rejected: number[] = [];
      page.on("response", (response) => {
        if (new URL(response.url()).pathname === "/api/jobs") rejected.push(response.status());
      });
      await page.goto(`http://127.0.0.1:${attackerPort}/#api=${encodeURIComponent(proxy.url)}`);
      await expect
        .poll(() => page.evaluate("window.attack"), WAIT)
        .toEqual({
          formDone: true,
          fetchType: "opaque",
        });
      // Both reached the Worker with the cookie, and both were refused there.
      expect(rejected).toEqual([403, 403]);
      expect(await ownedJobs()).toBe(before);
    } finally {
      // The browser keeps its connection open: close() alone would wait for it.
      attacker.closeAllConnections();
      await closeServer(attacker);
    }
  });
});
