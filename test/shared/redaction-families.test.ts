import { describe, expect, it } from "vitest";
import { createLineSanitizer } from "../../src/shared/sanitize/line-sanitizer.ts";
import {
  REDACTION_FAMILIES,
  type RedactionTally,
} from "../../src/shared/sanitize/redaction-families.ts";
import { SECRET_PATTERNS } from "../../src/shared/sanitize/rule-set.ts";
import { createSecretValues } from "../../src/shared/sanitize/secret-values.ts";

// What the runner's build_log_redactions_total{family} counts: each secret masked, once, under
// the family of what masked it.
const TOKEN = "ghp_0123456789abcdefghijABCDEFGHIJ012345";

function tallied(lines: readonly string[], secrets: readonly string[] = []) {
  const redactions: RedactionTally = new Map();
  const sanitizer = createLineSanitizer({ secrets: createSecretValues(secrets), redactions });
  const out = lines.map((line) => sanitizer.sanitize(line));
  return { out, counts: Object.fromEntries(redactions) };
}

describe("redactions by family", () => {
  it("gives every rule of the table a family from the list", () => {
    for (const rule of SECRET_PATTERNS) expect(REDACTION_FAMILIES).toContain(rule.family);
  });

  it("counts each secret once, under its family", () => {
    const { out, counts } = tallied(
      [
        `token ${TOKEN} and again ${TOKEN}`,
        "password: hunter2-sEcReT-99",
        "curl -u deploy:s3cr3tPassw0rd https://example.com",
        "the job's value: my-registered-value-42",
        "Authorization: Bearer abcdefghijklmnopqrstuvwxyz0123",
      ],
      ["my-registered-value-42"],
    );
    expect(out.every((line) => line?.includes("[REDACTED]"))).toBe(true);
    expect(counts).toEqual({
      token: 2,
      "labelled-value": 1,
      "command-line": 1,
      "registered-value": 1,
      header: 1,
    });
  });

  it("counts a private key block over many lines as one", () => {
    const { out, counts } = tallied([
      "-----BEGIN RSA PRIVATE KEY-----",
      "MIIEowIBAAKCAQEA0Z3VS5JJcds3xfn/ygWyF0qJ3e2+vFpQ2bC1UAKZ3aC4xN5p",
      "Kx7Lm9pQ2bC1UAKZ3aC4xN5pMIIEowIBAAKCAQEA0Z3VS5JJcds3xfn/ygWyF0qJ",
      "-----END RSA PRIVATE KEY-----",
    ]);
    expect(out.every((line) => line === "[REDACTED]")).toBe(true);
    expect(counts).toEqual({ "private-key": 1 });
  });

  it("counts nothing on ordinary build output, nor a marker already there", () => {
    const { counts } = tallied([
      "> next build",
      "Compiled successfully in 2.1s",
      "password: [REDACTED]",
    ]);
    expect(counts).toEqual({});
  });
});
