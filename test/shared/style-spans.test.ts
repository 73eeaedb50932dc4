import { describe, expect, it } from "vitest";
import {
  decodeEntry,
  ENTRY_FORMAT_VERSION,
  EntryFormatError,
  encodeEntryFields,
  type LogRecord,
  STYLED_ENTRY_FORMAT_VERSION,
} from "../../src/shared/entry.ts";
import { createLineSanitizer, type StyledLine } from "../../src/shared/sanitize/line-sanitizer.ts";
import { REDACTED } from "../../src/shared/sanitize/redacted.ts";
import { createSecretValues } from "../../src/shared/sanitize/secret-values.ts";
import { isStyleSpanList, type StyleSpan } from "../../src/shared/style-spans.ts";
import nextBuild from "../fixtures/colour/next-build.ansi?raw";
import npmMissingScript from "../fixtures/colour/npm-missing-script.ansi?raw";
import npmRunBuild from "../fixtures/colour/npm-run-build-tsc.ansi?raw";
import tscPretty from "../fixtures/colour/tsc-pretty.ansi?raw";
import viteBuild from "../fixtures/colour/vite-build.ansi?raw";

const FIXTURES = {
  "npm-missing-script": npmMissingScript,
  "npm-run-build-tsc": npmRunBuild,
  "tsc-pretty": tscPretty,
  "vite-build": viteBuild,
  "next-build": nextBuild,
};

/** Every line of a captured log through one stream's sanitizer, as the runner feeds it. */
function styledLines(log: string): StyledLine[] {
  const sanitizer = createLineSanitizer();
  return log.split("\n").flatMap((raw) => sanitizer.sanitizeStyled(raw) ?? []);
}

/** The text of each span, read back through its range: what a viewer paints in that style. */
function painted(line: StyledLine): [string, string, string?][] {
  return (line.spans ?? []).map((span) => [
    line.text.slice(span.s, span.e),
    span.c,
    ...(span.h === undefined ? [] : [span.h]),
  ]) as [string, string, string?][];
}

const lineWith = (lines: StyledLine[], text: string): StyledLine => {
  const found = lines.find((line) => line.text.includes(text));
  if (found === undefined) throw new Error(`no line with ${text}`);
  return found;
};

describe("FORCE_COLOR=1 output as style spans beside the plain text", () => {
  it.each(Object.entries(FIXTURES))(
    "%s: the same text as without colour, and valid spans",
    (_name, log) => {
      const plain = createLineSanitizer();
      const expected = log.split("\n").flatMap((raw) => plain.sanitize(raw) ?? []);
      const lines = styledLines(log);
      expect(lines.map((line) => line.text)).toEqual(expected);
      for (const line of lines) {
        expect(line.text.includes("\u001b") || line.text.includes("\u009b")).toBe(false);
        if (line.spans !== undefined)
          expect(isStyleSpanList(line.spans, line.text.length)).toBe(true);
      }
      expect(lines.some((line) => line.spans !== undefined)).toBe(true);
    },
  );

  it("tsc --pretty: file, position, error and code in their colours; the squiggle inverse", () => {
    const lines = styledLines(tscPretty);
    expect(painted(lineWith(lines, "TS2322"))).toEqual([
      ["bad.ts", "fg14"],
      ["1", "fg11"],
      ["7", "fg11"],
      ["error", "fg9"],
      [" TS2322: ", "fg8"],
    ]);
    expect(painted(lineWith(lines, "const x"))).toEqual([["1", "v"]]);
    expect(painted(lineWith(lines, "~"))).toEqual([
      [" ", "v"],
      ["      ~", "fg9"],
    ]);
  });

  it("npm: a bold npm and a red error, a yellow warn and its blue message", () => {
    expect(painted(lineWith(styledLines(npmMissingScript), "Missing script"))).toEqual([
      ["npm", "b"],
      ["error", "fg1"],
    ]);
    const warn = lineWith(styledLines(npmRunBuild), "Unknown cli config");
    expect(painted(warn).slice(0, 2)).toEqual([
      ["npm", "b"],
      ["warn", "fg3"],
    ]);
    expect(painted(warn)[2]?.[1]).toBe("fg12");
  });

  it("vite: colour carried over a line break as a terminal carries it; dim, bold and sizes", () => {
    const lines = styledLines(viteBuild);
    expect(painted(lineWith(lines, "Some chunks"))).toEqual([
      ["(!) Some chunks are larger than 500 kB after minification.", "fg3"],
    ]);
    expect(painted(lineWith(lines, "built in"))).toEqual([["✓ built in 1.21s", "fg2"]]);
    const asset = painted(lineWith(lines, "index-C6ZpzGLe.js"));
    expect(asset[0]).toEqual(["dist/", "d"]);
    expect(asset).toContainEqual(["143.36 kB", "b fg3"]);
  });

  it("next: a truecolour triangle and an http(s) link kept with its target", () => {
    const lines = styledLines(nextBuild);
    expect(painted(lineWith(lines, "Next.js"))).toEqual([["▲ Next.js 14.2.18", "b fg#ad7fa8"]]);
    const link = "https://nextjs.org/docs/messages/module-not-found";
    expect(painted(lineWith(lines, link))).toEqual([[link, "", link]]);
  });
});

describe("colour and redaction", () => {
  const secret = "s3cr3t-Value-0123456789";
  const sanitizerWithSecret = () => {
    const secrets = createSecretValues();
    secrets.add(secret);
    return createLineSanitizer({ secrets });
  };

  it.each([
    [
      "coloured inside the secret",
      `key \u001b[31ms3cr3t\u001b[32m-Value-\u001b[34m0123456789\u001b[0m end`,
    ],
    ["a colour starting mid-secret", `key s3cr3t-Va\u001b[1mlue-0123456789 end\u001b[0m`],
    ["the secret split by escapes", `key s3\u001b[0mcr\u001b[0m3t-Value-0123456789 end`],
  ])("%s: the marker is one span or none, never cut", (_case, raw) => {
    const line = sanitizerWithSecret().sanitizeStyled(raw);
    expect(line?.text).toBe(`key ${REDACTED} end`);
    const start = 4;
    const end = start + REDACTED.length;
    for (const span of line?.spans ?? []) {
      // No span edge falls strictly inside the marker.
      expect(span.s <= start || span.s >= end).toBe(true);
      expect(span.e <= start || span.e >= end).toBe(true);
    }
  });

  it("a pattern redaction (a GitHub token) keeps the colours around it in place", () => {
    const line = createLineSanitizer().sanitizeStyled(
      "\u001b[33mtoken\u001b[0m=ghp_abcdefghijklmnopqrstuvwxyz0123456789 \u001b[32mgreen\u001b[0m",
    );
    expect(line?.text).toBe(`token=${REDACTED} green`);
    expect(line && painted(line)).toEqual([
      ["token", "fg3"],
      ["green", "fg2"],
    ]);
  });

  it.each([
    ["javascript:", "javascript:alert(1)"],
    ["data:", "data:text/html,<script>alert(1)</script>"],
    ["file:", "file:///etc/passwd"],
    ["user info", "https://deploy:hunter2hunter2@example.com/"],
    ["a token in the query", "https://example.com/?token=ghp_abcdefghijklmnopqrstuvwxyz0123456789"],
    ["a registered secret", `https://example.com/${secret}`],
  ])("drops a link with %s, keeps its text", (_case, href) => {
    const line = sanitizerWithSecret().sanitizeStyled(
      `see \u001b]8;;${href}\u0007the docs\u001b]8;;\u0007 now`,
    );
    expect(line).toEqual({ text: "see the docs now" });
  });

  it("a truncated line keeps no span over the truncation marker", () => {
    const line = createLineSanitizer({ maxLength: 10 }).sanitizeStyled(
      `\u001b[31m${"x".repeat(40)}\u001b[0m`,
    );
    expect(line?.spans).toEqual([{ s: 0, e: 10, c: "fg1" }]);
  });
});

describe("the versioned entry format", () => {
  const ts = "2026-12-02T00:00:00.000Z";
  const plain: LogRecord = { ts, source: "stdout", phase: "build", text: "plain" };
  const styled: LogRecord = {
    ts,
    source: "stderr",
    phase: "build",
    text: "error here",
    spans: [{ s: 0, e: 5, c: "b fg1" }],
  };

  it("writes v1 without spans and v2 with them; reads both", () => {
    const v1 = encodeEntryFields([plain], 0);
    expect(v1.v).toBe(ENTRY_FORMAT_VERSION);
    const v2 = encodeEntryFields([plain, styled], 1);
    expect(v2.v).toBe(STYLED_ENTRY_FORMAT_VERSION);
    expect(decodeEntry("1-0", v1).lines).toEqual([{ ...plain, cursor: "1-0:0", n: 0 }]);
    expect(decodeEntry("2-0", v2).lines).toEqual([
      { ...plain, cursor: "2-0:0", n: 1 },
      { ...styled, cursor: "2-0:1", n: 2 },
    ]);
    // An entry written before spans existed reads as it always did.
    const old = {
      v: "1",
      n: "0",
      lines: JSON.stringify([{ ts, source: "stdout", phase: "build", text: "old" }]),
    };
    expect(decodeEntry("3-0", old).lines).toEqual([
      { ...plain, text: "old", cursor: "3-0:0", n: 0 },
    ]);
  });

  it.each<[string, unknown]>([
    ["markup in the style", [{ s: 0, e: 5, c: '"><img src=x onerror=alert(1)>' }]],
    ["a class outside the grammar", [{ s: 0, e: 5, c: "fg1 evil" }]],
    ["a colour past 255", [{ s: 0, e: 5, c: "fg300" }]],
    ["a range past the text", [{ s: 0, e: 50, c: "b" }]],
    [
      "overlapping spans",
      [
        { s: 0, e: 5, c: "b" },
        { s: 3, e: 6, c: "i" },
      ],
    ],
    ["an empty span", [{ s: 2, e: 2, c: "b" }]],
    ["a javascript: link", [{ s: 0, e: 5, c: "", h: "javascript:alert(1)" }]],
    ["text in a span", [{ s: 0, e: 5, c: "b", text: "<b>" }]],
  ])("refuses a line with %s", (_case, spans) => {
    const bad = { ...styled, spans: spans as StyleSpan[] };
    if ((spans as { text?: string }[])[0]?.text !== undefined) {
      // Extra keys are not read: the decoded line holds the span's range and style only.
      const decoded = decodeEntry("4-0", { v: "2", lines: JSON.stringify([bad]) });
      expect(decoded.lines[0]?.spans).toStrictEqual([{ s: 0, e: 5, c: "b" }]);
      return;
    }
    expect(() => decodeEntry("4-0", { v: "2", lines: JSON.stringify([bad]) })).toThrow(
      EntryFormatError,
    );
  });

  it("refuses a version it does not know", () => {
    expect(() => decodeEntry("5-0", { v: "4", lines: JSON.stringify([plain]) })).toThrow(
      EntryFormatError,
    );
  });
});
