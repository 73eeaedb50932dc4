import { describe, expect, it } from "vitest";
import { collapseCarriageReturns } from "../../src/shared/sanitize/carriage-return.ts";
import { createLineSanitizer, MAX_LINE_LENGTH } from "../../src/shared/sanitize/line-sanitizer.ts";
import { createPrivateKeyBlockRedactor } from "../../src/shared/sanitize/private-key-blocks.ts";
import { createSecretValues, MIN_SECRET_LENGTH } from "../../src/shared/sanitize/secret-values.ts";
import { TRUNCATION_MARKER, truncateLine } from "../../src/shared/sanitize/truncate.ts";

const base64 = (text: string): string =>
  btoa(String.fromCharCode(...new TextEncoder().encode(text)));

describe("ANSI escape sequences", () => {
  it.each([
    ["\u001b[31mred\u001b[0m text", "red text"],
    ["\u001b[1;32m✓\u001b[39m built in \u001b[2m1.2s\u001b[22m", "✓ built in 1.2s"],
    ["\u001b]8;;https://example.com\u0007link\u001b]8;;\u0007", "link"],
    ["\u001b[2K\u001b[1Gdone", "done"],
  ])("strips %j", (raw, expected) => {
    expect(createLineSanitizer().sanitize(raw)).toBe(expected);
  });
});

describe("carriage returns", () => {
  it("collapses a progress bar to its final frame", () => {
    expect(collapseCarriageReturns("[#    ] 20%\r[##   ] 40%\r[#####] 100%")).toBe("[#####] 100%");
  });

  it("shows what a terminal shows when a shorter frame overwrites a longer one", () => {
    expect(collapseCarriageReturns("Downloading 100%\rDone")).toBe("Doneloading 100%");
  });

  it("honours erase-line sequences, as progress bars use them", () => {
    expect(collapseCarriageReturns("Downloading 100%\r\u001b[KDone")).toBe("Done");
    expect(collapseCarriageReturns("Downloading 100%\rDone\u001b[K")).toBe("Done");
  });

  it("keeps the text before a trailing carriage return", () => {
    expect(collapseCarriageReturns("almost done\r")).toBe("almost done");
  });

  it("collapses a million redraws", () => {
    const frames = Array.from({ length: 1_000_000 }, (_, i) => `${i % 100}%`).join("\r");
    expect(collapseCarriageReturns(`${frames}\rcomplete`)).toBe("complete");
  });
});

describe("exact secret values", () => {
  const value = "s3cr3t-Value_with/Special+chars";

  it.each([
    ["as is", `token is ${value}!`],
    ["JSON-escaped", `{"k":${JSON.stringify(`${value}"q"`)}}`],
    ["URL-encoded", `https://example.com/?v=${encodeURIComponent(value)}`],
    ["base64", `Authorization: Basic ${base64(`user:${value}`)}`],
    ["base64 at offset 0", base64(value)],
    ["base64 at offset 1", base64(`x${value}`)],
    ["base64 at offset 2", base64(`xy${value}`)],
    ["base64url", base64(`xy${value}`).replaceAll("+", "-").replaceAll("/", "_")],
  ])("masks the value %s", (_form, line) => {
    const secrets = createSecretValues([value]);
    const masked = secrets.mask(line);
    expect(masked).toContain("[REDACTED]");
    expect(masked).not.toContain(value);
    expect(masked).not.toContain(encodeURIComponent(value));
    for (const k of [0, 1, 2]) {
      const encoded = base64("ab".slice(0, k) + value);
      expect(masked).not.toContain(encoded.slice(4, encoded.length - 4));
    }
  });

  it("masks every occurrence and leaves the rest of the line", () => {
    const secrets = createSecretValues(["hunter2hunter2"]);
    expect(secrets.mask("a hunter2hunter2 b hunter2hunter2 c")).toBe("a [REDACTED] b [REDACTED] c");
  });

  it(`refuses values shorter than ${MIN_SECRET_LENGTH} characters with a reason`, () => {
    const secrets = createSecretValues();
    const result = secrets.add("abc");
    expect(result).toMatchObject({ added: false });
    expect(result.added ? "" : result.reason).toMatch(/shorter than 6/);
    expect(secrets.mask("abc abcdef")).toBe("abc abcdef");
    expect(secrets.size).toBe(0);
  });

  it("masks each line of a multi-line value", () => {
    const pem = "line-one-of-the-secret\nline-two-of-the-secret";
    const secrets = createSecretValues([pem]);
    expect(secrets.mask("> line-two-of-the-secret")).toBe("> [REDACTED]");
  });

  it("treats regex metacharacters in a value literally", () => {
    const secrets = createSecretValues(["a.b*c+d?e(f)[g]"]);
    expect(secrets.mask("x a.b*c+d?e(f)[g] y axbbbcdde")).toBe("x [REDACTED] y axbbbcdde");
  });
});

describe("multi-line private keys", () => {
  it("redacts every line from BEGIN to END and nothing after", () => {
    const redactor = createPrivateKeyBlockRedactor();
    const lines = [
      "writing key:",
      "-----BEGIN RSA PRIVATE KEY-----",
      "MIIEowIBAAKCAQEA7bq1mZ2e3r4t5y6u7i8o9p0a1s2d3f4g5h6j7k8l9",
      "Zm9vYmFyYmF6cXV4Zm9vYmFyYmF6cXV4Zm9vYmFyYmF6cXV4",
      "-----END RSA PRIVATE KEY----- done",
      "next step",
    ];
    expect(lines.map((line) => redactor.redactLine(line))).toEqual([
      "writing key:",
      "[REDACTED]",
      "[REDACTED]",
      "[REDACTED]",
      "[REDACTED] done",
      "next step",
    ]);
  });

  it("redacts a block on one line, and several per line", () => {
    const redactor = createPrivateKeyBlockRedactor();
    expect(
      redactor.redactLine(
        '{"key":"-----BEGIN PRIVATE KEY-----\\nMIIB\\n-----END PRIVATE KEY-----\\n","b":"-----BEGIN EC PRIVATE KEY-----x-----END EC PRIVATE KEY-----"}',
      ),
    ).toBe('{"key":"[REDACTED]\\n","b":"[REDACTED]"}');
    expect(redactor.inBlock).toBe(false);
  });

  it("ends a block whose END never comes at the first line that cannot be key body", () => {
    const redactor = createPrivateKeyBlockRedactor();
    redactor.redactLine("-----BEGIN OPENSSH PRIVATE KEY-----");
    expect(redactor.redactLine("b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQ")).toBe("[REDACTED]");
    expect(redactor.redactLine("  AAAAC3NzaC1lZDI1NTE5AAAAIK+/==  ")).toBe("[REDACTED]");
    // A vite summary line (spaces, a box-drawing character) is shown as it is, at once.
    const summary = "dist/assets/index-DiwrgTda.js  143.36 kB │ gzip: 46.11 kB";
    expect(redactor.redactLine(summary)).toBe(summary);
    expect(redactor.inBlock).toBe(false);
    expect(redactor.redactLine("b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQ")).toBe(
      "b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQ",
    );
  });

  it("keeps armour headers and blank lines of an encrypted key inside the block", () => {
    const redactor = createPrivateKeyBlockRedactor();
    const lines = [
      "-----BEGIN RSA PRIVATE KEY-----",
      "Proc-Type: 4,ENCRYPTED",
      "DEK-Info: AES-128-CBC,0A1B2C3D4E5F60718293A4B5C6D7E8F9",
      "",
      "MIIEowIBAAKCAQEA7bq1mZ2e3r4t5y6u7i8o9p0a1s2d3f4g5h6j7k8l9",
      "-----END RSA PRIVATE KEY-----",
    ];
    expect(lines.map((line) => redactor.redactLine(line))).toEqual([
      "[REDACTED]",
      "[REDACTED]",
      "[REDACTED]",
      "",
      "[REDACTED]",
      "[REDACTED]",
    ]);
  });

  it("shows a vite build's summary after a key whose END never comes, through the sanitizer", () => {
    const sanitizer = createLineSanitizer();
    const lines = [
      "-----BEGIN PRIVATE KEY-----",
      "MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC",
      "\u001b[32m✓\u001b[39m 31 modules transformed.",
      "dist/index.html                  0.46 kB │ gzip:  0.30 kB",
      "\u001b[32m✓ built in 812ms\u001b[39m",
    ];
    expect(lines.map((line) => sanitizer.sanitize(line))).toEqual([
      "[REDACTED]",
      "[REDACTED]",
      "✓ 31 modules transformed.",
      "dist/index.html                  0.46 kB │ gzip:  0.30 kB",
      "✓ built in 812ms",
    ]);
  });

  it("keeps state per stream inside the line sanitizer", () => {
    const stdout = createLineSanitizer();
    const stderr = createLineSanitizer();
    expect(stdout.sanitize("-----BEGIN PRIVATE KEY-----")).toBe("[REDACTED]");
    expect(stderr.sanitize("warning: something")).toBe("warning: something");
    expect(stdout.sanitize("MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC")).toBe(
      "[REDACTED]",
    );
    expect(stdout.sanitize("-----END PRIVATE KEY-----")).toBe("[REDACTED]");
    expect(stdout.sanitize("after")).toBe("after");
  });
});

describe("truncation", () => {
  it("keeps lines up to the limit", () => {
    expect(truncateLine("x".repeat(2000), 2000)).toBe("x".repeat(2000));
  });

  it("cuts a longer line to the limit plus a marker", () => {
    expect(createLineSanitizer().sanitize("y".repeat(5000))).toBe(
      "y".repeat(MAX_LINE_LENGTH) + TRUNCATION_MARKER,
    );
  });

  it("never splits a surrogate pair", () => {
    const line = `${"a".repeat(1999)}🚀🚀`;
    const out = truncateLine(line, 2000);
    expect(out).toBe("a".repeat(1999) + TRUNCATION_MARKER);
    expect(out.toWellFormed()).toBe(out);
  });

  it("truncates after redacting, so a secret across the cut is never half shown", () => {
    const secret = "cut-across-the-limit-secret";
    const sanitizer = createLineSanitizer({ secrets: createSecretValues([secret]) });
    const out = sanitizer.sanitize(`${"x".repeat(1990) + secret}tail`);
    expect(out).toBe(`${"x".repeat(1990)}[REDACTED]${TRUNCATION_MARKER}`);
    expect(out).not.toContain("cut-across");
  });

  it("handles a 10 MB line by reading a bounded prefix", () => {
    const out = createLineSanitizer().sanitize("z".repeat(10 * 1024 * 1024));
    expect(out).toBe("z".repeat(MAX_LINE_LENGTH) + TRUNCATION_MARKER);
  });
});

describe("blank lines and control characters", () => {
  it.each(["", "   ", "\t\t", "\u001b[0m", "\u001b[2K\r", "   \r"])("drops %j", (line) => {
    expect(createLineSanitizer().sanitize(line)).toBeNull();
  });

  it("removes control characters that a viewer cannot show", () => {
    expect(createLineSanitizer().sanitize("bell\u0007 nul\u0000 del\u007f done\u001b")).toBe(
      "bell nul del done",
    );
  });

  it("replaces lone surrogates so the line is valid UTF-8", () => {
    expect(createLineSanitizer().sanitize("bad \ud800 surrogate")).toBe("bad \ufffd surrogate");
  });

  it("keeps tabs", () => {
    expect(createLineSanitizer().sanitize("a\tb")).toBe("a\tb");
  });
});

describe("the sanitizer as a whole", () => {
  it("redacts a secret hidden behind colour codes and progress frames", () => {
    const sanitizer = createLineSanitizer({ secrets: createSecretValues(["topsecretvalue"]) });
    expect(sanitizer.sanitize("loading\r\u001b[Kkey: top\u001b[1msecret\u001b[0mvalue")).toBe(
      "key: [REDACTED]",
    );
  });

  it("applies the credential patterns", () => {
    expect(createLineSanitizer().sanitize("API_KEY=sk-abc123def456ghi789")).toBe(
      "API_KEY=[REDACTED]",
    );
  });
});
