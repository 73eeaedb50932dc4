import { describe, expect, it } from "vitest";
import buildOutput from "../../bench/fixtures/build-output.log?raw";
import contexts from "../fixtures/redaction/contexts.txt?raw";
import { positives } from "../fixtures/redaction/corpus.ts";
import formats from "../fixtures/redaction/formats.txt?raw";
import webappBuild from "../fixtures/redaction/ordinary/webapp-build.log?raw";
import webappInspect from "../fixtures/redaction/ordinary/webapp-inspect.log?raw";
import { leaksPiece, scoreRedaction } from "../fixtures/redaction/score.ts";
import structural from "../fixtures/redaction/structural.txt?raw";

// The same corpus and scoring as `npm run score:redaction`, held to the product's thresholds:
// at least 97 % of secrets gone with no piece of half of one left, at most 0.1 % of ordinary
// build lines changed.
describe("the redaction corpus", () => {
  const corpus = positives({ formats, contexts, structural });
  const score = scoreRedaction(corpus, [buildOutput, webappBuild, webappInspect]);

  it("is the size the thresholds are meant for", () => {
    expect(new Set(corpus.map((positive) => positive.kind)).size).toBeGreaterThan(150);
    expect(score.secrets).toBeGreaterThan(10_000);
    expect(score.ordinaryLines).toBeGreaterThan(40_000);
  });

  it("loses at least 97 % of the secrets, strictly", () => {
    expect(score.strictRecall).toBeGreaterThanOrEqual(0.97);
    expect(score.recall).toBeGreaterThanOrEqual(score.strictRecall);
  });

  it("changes at most 0.1 % of ordinary build lines", () => {
    expect(score.falsePositiveRate).toBeLessThanOrEqual(0.001);
  });

  it("generates the same corpus on every run", () => {
    expect(positives({ formats, contexts, structural })).toEqual(corpus);
  });
});

describe("the strict measure", () => {
  it("counts a secret half shown as not removed, and its own name as no leak", () => {
    const secret = "ghp_0123456789abcdefABCDEF0123456789abcd";
    expect(leaksPiece(secret, `token ${secret}`, "token ghp_0123[REDACTED]")).toBe(true);
    expect(leaksPiece(secret, `token ${secret}`, "token [REDACTED]")).toBe(false);
    const clojars = "CLOJARS_0a1b2c3d4e5f";
    expect(leaksPiece(clojars, `CLOJARS_PASSWORD=${clojars}`, "CLOJARS_PASSWORD=[REDACTED]")).toBe(
      false,
    );
  });
});
