import type { JobStep } from "../../src/shared/job-spec.ts";

/**
 * A build whose output is known line by line: `gt 1` ... `gt N` on stdout, a pause after every
 * `burst` lines, then the given exit code. Fault tests compare every channel against it.
 */
export interface GroundTruthBuild {
  readonly lines: number;
  readonly burst?: number;
  readonly pauseSeconds?: number;
  readonly exitCode?: number;
}

const LINE = /^gt (\d+)$/;

export function groundTruthStep(build: GroundTruthBuild): JobStep {
  const burst = build.burst ?? 50;
  const pause = build.pauseSeconds ?? 0.05;
  return {
    name: "Numbered build",
    phase: "build",
    command: `i=1; while [ $i -le ${build.lines} ]; do echo "gt $i"; if [ $((i % ${burst})) -eq 0 ]; then sleep ${pause}; fi; i=$((i+1)); done; exit ${build.exitCode ?? 0}`,
    timeout_ms: 10 * 60_000,
  };
}

/** What one channel showed of a ground-truth build. */
export interface SequenceReport {
  /** Numbered lines seen, duplicates included. */
  readonly seen: number;
  readonly missing: number;
  readonly duplicated: number;
  readonly outOfOrder: number;
  /** The first few missing numbers, to read a failure by. */
  readonly firstMissing: readonly number[];
}

/**
 * Compares the texts a channel showed (other lines, such as system lines, are ignored) with
 * `gt 1` .. `gt expected`. `prefixOnly`: the build was cut short (its runner killed), so only
 * lines up to the highest one seen are expected.
 */
export function checkSequence(
  texts: readonly string[],
  expected: number,
  options: { readonly prefixOnly?: boolean } = {},
): SequenceReport {
  const counts = new Map<number, number>();
  let outOfOrder = 0;
  let highest = 0;
  let seen = 0;
  for (const text of texts) {
    const match = LINE.exec(text);
    if (!match) continue;
    const n = Number(match[1]);
    seen += 1;
    if (n < highest) outOfOrder += 1;
    highest = Math.max(highest, n);
    counts.set(n, (counts.get(n) ?? 0) + 1);
  }
  const upTo = options.prefixOnly ? Math.min(highest, expected) : expected;
  const firstMissing: number[] = [];
  let missing = 0;
  for (let n = 1; n <= upTo; n++) {
    if (counts.has(n)) continue;
    missing += 1;
    if (firstMissing.length < 10) firstMissing.push(n);
  }
  let duplicated = 0;
  for (const count of counts.values()) duplicated += count - 1;
  return { seen, missing, duplicated, outOfOrder, firstMissing };
}

/** How many lines a system line says were lost or dropped, summed over the log. */
export function announcedLosses(texts: readonly string[]): number {
  let total = 0;
  for (const text of texts) {
    const match = /^(\d+) log lines were (?:lost|dropped) here/.exec(text);
    if (match) total += Number(match[1]);
  }
  return total;
}
