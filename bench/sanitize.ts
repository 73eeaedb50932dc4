// npm run bench:sanitize: MB/s and lines/s of the sanitizer on real build output, beside the
// seed's rule set run in the same process, plus a hostile-input check that the cost per byte
// stays flat as the input doubles (linear time).
import { performance } from "node:perf_hooks";
import stripAnsi from "strip-ansi";
import { createLineSanitizer } from "../src/shared/sanitize/line-sanitizer.ts";
import { redactSecretPatterns } from "../src/shared/sanitize/redact-patterns.ts";
import { createSecretValues } from "../src/shared/sanitize/secret-values.ts";
import { buildOutputLines } from "./fixture.ts";

// The seed's rule set, as the issue quotes its behaviour: four patterns, ANSI stripped,
// 2,000-character truncation. The baseline every figure here is a ratio against.
const SEED_PATTERNS: [RegExp, string][] = [
  [/(API_KEY|SECRET|TOKEN|PASSWORD)=\S+/gi, "$1=[REDACTED]"],
  [/sk-[a-zA-Z0-9]{20,}/g, "[REDACTED]"],
  [/postgres(?:ql)?:\/\/\S+/g, "[REDACTED]"],
  [/AKIA[0-9A-Z]{16}/g, "[REDACTED]"],
];
function seedSanitize(line: string): string | null {
  let text = stripAnsi(line);
  for (const [pattern, replacement] of SEED_PATTERNS) text = text.replace(pattern, replacement);
  if (text.length > 2000) text = `${text.slice(0, 2000)}...[truncated]`;
  return text.trim() === "" ? null : text;
}

const lines = buildOutputLines();
const bytes = lines.reduce((sum, line) => sum + Buffer.byteLength(line) + 1, 0);
const ROUNDS = 9;

interface Throughput {
  mbPerSecond: number;
  linesPerSecond: number;
}

// The variants take turns, round by round, and each reports its median round: on a shared
// machine the load drifts over seconds, and measuring one variant after another would put
// that drift into the ratio.
function measureInTurns(
  variants: Record<string, (line: string) => string | null>,
): Record<string, Throughput> {
  const times: Record<string, number[]> = {};
  for (const [name, sanitize] of Object.entries(variants)) {
    for (const line of lines.slice(0, 5000)) sanitize(line); // warm up the JIT
    times[name] = [];
  }
  for (let round = 0; round < ROUNDS; round++) {
    for (const [name, sanitize] of Object.entries(variants)) {
      const start = performance.now();
      for (const line of lines) sanitize(line);
      times[name]?.push(performance.now() - start);
    }
  }
  const result: Record<string, Throughput> = {};
  for (const [name, list] of Object.entries(times)) {
    list.sort((a, b) => a - b);
    const seconds = (list[Math.floor(list.length / 2)] ?? NaN) / 1000;
    result[name] = { mbPerSecond: bytes / 1e6 / seconds, linesPerSecond: lines.length / seconds };
  }
  return result;
}

const ours = createLineSanitizer();
const oursWithSecrets = createLineSanitizer({
  secrets: createSecretValues(
    Array.from({ length: 20 }, (_, i) => `registered-secret-value-${i}-${"x".repeat(i)}`),
  ),
});
const measured = measureInTurns({
  seed: seedSanitize,
  plain: (line) => ours.sanitize(line),
  withSecrets: (line) => oursWithSecrets.sanitize(line),
});
const none = { mbPerSecond: NaN, linesPerSecond: NaN };
const seed = measured.seed ?? none;
const plain = measured.plain ?? none;
const withSecrets = measured.withSecrets ?? none;

// Hostile input: the time per MB for 1 MB and 2 MB of the same pattern; ~1.0 means linear.
const HOSTILE: Record<string, (n: number) => string> = {
  repeated_char: (n) => "a".repeat(n),
  token_prefixes: (n) => "sk-".repeat(Math.ceil(n / 3)),
  assignments: (n) => "token=".repeat(Math.ceil(n / 6)),
  url_userinfo: (n) => "://a:".repeat(Math.ceil(n / 5)),
  jwt_prefixes: (n) => "eyJ.".repeat(Math.ceil(n / 4)),
  progress_frames: (n) => "50%\r".repeat(Math.ceil(n / 4)),
};
// The sanitizer reads at most 16 KiB of a line, so it is flat by construction; the pattern
// layer is measured on the whole input, as the defence that must hold without that cut.
const timeOne = (text: string): number => {
  const start = performance.now();
  redactSecretPatterns(text);
  return performance.now() - start;
};
const hostileRatios: Record<string, number> = {};
for (const [name, make] of Object.entries(HOSTILE)) {
  const small = make(1_000_000);
  const large = make(2_000_000);
  timeOne(small);
  const t1 = Math.min(timeOne(small), timeOne(small), timeOne(small));
  const t2 = Math.min(timeOne(large), timeOne(large), timeOne(large));
  hostileRatios[name] = t2 / Math.max(t1, 0.001);
  console.log(
    `hostile ${name} (patterns, whole input): 1 MB ${t1.toFixed(2)} ms, 2 MB ${t2.toFixed(2)} ms (x${hostileRatios[name]?.toFixed(2)})`,
  );
}
const worstHostile = Math.max(...Object.values(hostileRatios));

console.log(`fixture: ${lines.length} lines, ${(bytes / 1e6).toFixed(2)} MB of real build output`);
console.log(
  `seed rules:          ${seed.mbPerSecond.toFixed(1)} MB/s, ${seed.linesPerSecond.toFixed(0)} lines/s`,
);
console.log(
  `sanitizer:           ${plain.mbPerSecond.toFixed(1)} MB/s, ${plain.linesPerSecond.toFixed(0)} lines/s (${(plain.mbPerSecond / seed.mbPerSecond).toFixed(2)}x the seed)`,
);
console.log(
  `sanitizer+20 values: ${withSecrets.mbPerSecond.toFixed(1)} MB/s, ${withSecrets.linesPerSecond.toFixed(0)} lines/s (${(withSecrets.mbPerSecond / seed.mbPerSecond).toFixed(2)}x the seed)`,
);
console.log(
  [
    "bench=sanitize",
    `lines=${lines.length}`,
    `mb=${(bytes / 1e6).toFixed(2)}`,
    `mb_per_s=${plain.mbPerSecond.toFixed(1)}`,
    `lines_per_s=${plain.linesPerSecond.toFixed(0)}`,
    `secrets20_mb_per_s=${withSecrets.mbPerSecond.toFixed(1)}`,
    `seed_mb_per_s=${seed.mbPerSecond.toFixed(1)}`,
    `seed_lines_per_s=${seed.linesPerSecond.toFixed(0)}`,
    `ratio_vs_seed=${(plain.mbPerSecond / seed.mbPerSecond).toFixed(2)}`,
    `hostile_worst_doubling_ratio=${worstHostile.toFixed(2)}`,
  ].join(" "),
);
