// Shows what a log will look like once sanitized: lines on stdin, one sanitized line on stdout
// per input line (an empty line where a line would be dropped).
//   npm run -s sanitize [-- --secret VALUE ...] < build.log

import { once } from "node:events";
import { parseArgs } from "node:util";
import { createLineSanitizer } from "../src/shared/sanitize/line-sanitizer.ts";
import { createSecretValues } from "../src/shared/sanitize/secret-values.ts";
import { createLineBuffer, DEFAULT_MAX_LINE_LENGTH } from "./line-buffer.ts";

const USAGE = "usage: npm run -s sanitize [-- --secret VALUE ...] < input.log";

function parseCommandLine(argv: string[]): string[] {
  try {
    const { values } = parseArgs({
      args: argv,
      options: {
        secret: { type: "string", multiple: true },
        help: { type: "boolean", short: "h" },
      },
      strict: true,
      allowPositionals: false,
    });
    if (values.help) {
      process.stdout.write(`${USAGE}\n`);
      process.exit(0);
    }
    return values.secret ?? [];
  } catch (error) {
    process.stderr.write(
      `sanitize: ${error instanceof Error ? error.message : String(error)}\n${USAGE}\n`,
    );
    process.exit(2);
  }
}

async function main(): Promise<void> {
  const secrets = createSecretValues();
  for (const [i, value] of parseCommandLine(process.argv.slice(2)).entries()) {
    const result = secrets.add(value);
    if (!result.added)
      process.stderr.write(`sanitize: warning: --secret #${i + 1} ignored: ${result.reason}\n`);
  }
  const sanitizer = createLineSanitizer({ secrets });
  // One output line per input line: an overlong line is cut, not split.
  const lines = createLineBuffer({ maxLineLength: DEFAULT_MAX_LINE_LENGTH, overflow: "truncate" });
  const write = async (batch: string[]): Promise<void> => {
    if (batch.length === 0) return;
    const out = batch.map((line) => `${sanitizer.sanitize(line) ?? ""}\n`).join("");
    if (!process.stdout.write(out)) await once(process.stdout, "drain");
  };
  for await (const chunk of process.stdin) await write(lines.push(chunk as Uint8Array));
  await write(lines.end());
}

await main();
