import { readFile } from "node:fs/promises";
import { describe, expect, it } from "vitest";
import { ERROR_LINE, lineKind, WARNING_LINE } from "../../src/shared/log-classes.ts";

const page = await readFile(new URL("../../src/http/log-viewer.html", import.meta.url), "utf8");

describe("error and warning lines", () => {
  it("the viewer page carries the same two expressions as the server's search", () => {
    expect(page).toContain(`const ERROR_LINE = ${ERROR_LINE.toString()};`);
    expect(page).toContain(`const WARNING_LINE = ${WARNING_LINE.toString()};`);
  });

  it.each([
    "npm ERR! code ELIFECYCLE",
    'npm error Missing script: "build"',
    "src/app.ts(3,7): error TS2322: Type 'string' is not assignable to type 'number'.",
    "bad.ts:1:7 - error TS2322: Type 'string' is not assignable to type 'number'.",
    "Error: Cannot find module 'left-pad'",
    "TypeError: Cannot read properties of undefined (reading 'map')",
    "Failed to compile.",
    "error during build:",
    "Building failed with exit code 2",
    " ELIFECYCLE  Command failed with exit code 1.",
    "✖ 3 problems (3 errors, 0 warnings)",
  ])("%j is an error", (text) => {
    expect(lineKind(text)).toBe("error");
  });

  it.each([
    "npm warn deprecated inflight@1.0.6: This module is not supported",
    "npm WARN EBADENGINE Unsupported engine",
    "(!) Some chunks are larger than 500 kB after minification.",
    "⚠ Linting is disabled.",
    "warning: module 10 is large",
  ])("%j is a warning", (text) => {
    expect(lineKind(text)).toBe("warning");
  });

  it.each([
    "compiling module 5 of 40",
    "✓ built in 1.21s",
    "added 120 packages in 3s",
    "errorHandler.ts compiled",
    "0 errors",
  ])("%j is neither", (text) => {
    expect(lineKind(text)).toBeNull();
  });
});
