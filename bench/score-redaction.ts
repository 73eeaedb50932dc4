// npm run score:redaction [-- --all]: recall, strict recall (no piece of half a secret left)
// and the false-positive rate of the sanitizer on the corpus in test/fixtures/redaction
// (generated credentials in build-log contexts; real captured build output), the misses per
// kind and the ordinary lines it changed. --all prints every miss and change, not a sample.
import { readdirSync, readFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { positives } from "../test/fixtures/redaction/corpus.ts";
import { scoreRedaction } from "../test/fixtures/redaction/score.ts";
import { buildOutputText } from "./fixture.ts";

const { values } = parseArgs({ options: { all: { type: "boolean" } } });
const fixtures = new URL("../test/fixtures/redaction/", import.meta.url);
const read = (name: string): string => readFileSync(new URL(name, fixtures), "utf8");
const ordinaryDir = new URL("ordinary/", fixtures);
const ordinary = [
  buildOutputText(),
  ...readdirSync(ordinaryDir)
    .filter((name) => name.endsWith(".log") || name.endsWith(".txt"))
    .sort()
    .map((name) => readFileSync(new URL(name, ordinaryDir), "utf8")),
];

const corpus = positives({
  formats: read("formats.txt"),
  contexts: read("contexts.txt"),
  structural: read("structural.txt"),
});
const score = scoreRedaction(corpus, ordinary);
const sample = values.all ? Number.POSITIVE_INFINITY : 3;
const percent = (share: number): string => `${(share * 100).toFixed(2)} %`;

console.log(
  `positives: ${corpus.length} lines, ${score.secrets} secrets, ${new Set(corpus.map((p) => p.kind)).size} kinds`,
);
console.log(`ordinary:  ${score.ordinaryLines} lines of captured build output`);
console.log(
  `recall ${percent(score.recall)}, strict recall ${percent(score.strictRecall)}, false positives ${percent(score.falsePositiveRate)} (${score.changed.length} lines)`,
);
const kinds = [...score.misses].sort((a, b) => b[1].length - a[1].length);
if (kinds.length > 0) console.log("\nmisses per kind (secret not wholly removed):");
for (const [kind, misses] of kinds) {
  console.log(`  ${kind}: ${misses.length}`);
  for (const miss of misses.slice(0, sample)) console.log(`      ${miss.shown}`);
}
if (score.changed.length > 0) console.log("\nordinary lines changed:");
for (const change of score.changed.slice(0, values.all ? undefined : 20)) {
  console.log(`  - ${change.line}\n  + ${change.shown}`);
}
console.log(
  [
    "score=redaction",
    `secrets=${score.secrets}`,
    `recall=${score.recall.toFixed(4)}`,
    `strict_recall=${score.strictRecall.toFixed(4)}`,
    `ordinary_lines=${score.ordinaryLines}`,
    `false_positive_rate=${score.falsePositiveRate.toFixed(5)}`,
    `missed_kinds=${kinds.length}`,
  ].join(" "),
);
