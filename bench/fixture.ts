import { readFileSync } from "node:fs";

/** The captured output of real npm, tsc and vite runs (bench/fixtures/README.md), raw. */
export function buildOutputText(): string {
  return readFileSync(new URL("./fixtures/build-output.log", import.meta.url), "utf8");
}

/** The fixture's raw lines, ANSI escapes and \r progress frames kept. */
export function buildOutputLines(): string[] {
  return buildOutputText().split("\n");
}
