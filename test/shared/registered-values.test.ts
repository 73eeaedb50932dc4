import { describe, expect, it } from "vitest";
import { createLineSanitizer } from "../../src/shared/sanitize/line-sanitizer.ts";
import { createSecretValues } from "../../src/shared/sanitize/secret-values.ts";

const R = "[REDACTED]";
const VALUE = "Ab1!*'() /é~";

describe("a registered value in the encodings tools print", () => {
  // The expected forms are written out as Python, Go and JavaScript print them.
  it.each([
    ["encodeURIComponent", "Ab1!*'()%20%2F%C3%A9~"],
    ["Python quote() (keeps /)", "Ab1%21%2A%27%28%29%20/%C3%A9~"],
    ["Python quote(safe='')", "Ab1%21%2A%27%28%29%20%2F%C3%A9~"],
    ["Go url.QueryEscape", "Ab1%21%2A%27%28%29+%2F%C3%A9~"],
    ["lowercase hex", "Ab1%21%2a%27%28%29%20%2f%c3%a9~"],
    ["lowercase hex, + for space", "Ab1!*'()+%2f%c3%a9~"],
    ["JSON", "Ab1!*'() /é~"],
    ["JSON \\u escapes (Python json.dumps)", "Ab1!*'() /\\u00e9~"],
    ["JSON \\u escapes (Go, HTML-safe)", "Ab1!*\\u0027() /\\u00e9~"],
    ["JSON \\u escapes, upper-case hex", "Ab1!*'() /\\u00E9~"],
    ["hex", "416231212a272829202fc3a97e"],
    ["HEX", "416231212A272829202FC3A97E"],
  ])("%s", (_tool, encoded) => {
    const secrets = createSecretValues([VALUE]);
    expect(secrets.mask(`value=${encoded} end`)).toBe(`value=${R} end`);
  });
});

// What `base64 -w 76` (coreutils) and MIME (64 columns) print for a long value: a JSON
// credentials file, embedded in a larger blob at each byte alignment.
function wrappedBase64(text: string, columns: number): string[] {
  const encoded = btoa(String.fromCharCode(...new TextEncoder().encode(text)));
  const lines: string[] = [];
  for (let i = 0; i < encoded.length; i += columns) lines.push(encoded.slice(i, i + columns));
  return lines;
}

describe("a registered value base64-encoded and wrapped over lines", () => {
  const credentials = JSON.stringify({
    type: "service_account",
    project_id: "acme-prod-4821",
    private_key_id: "8f1c2b9e7d6a5f4e3c2b1a0987654321fedcba98",
    client_email: "deployer@acme-prod-4821.iam.gserviceaccount.com",
  });

  it.each([
    [76, ""],
    [76, "x"],
    [76, "xy"],
    [64, "prefix bytes "],
    [64, "ab"],
  ])("at %i columns after %j", (columns, before) => {
    const secrets = createSecretValues([credentials]);
    const sanitizer = createLineSanitizer({ secrets });
    const lines = wrappedBase64(`${before}${credentials}\nmore config after it`, columns);
    const shown = lines.map((line) => sanitizer.sanitize(line) ?? "");
    const whole = btoa(String.fromCharCode(...new TextEncoder().encode(credentials)));
    for (const line of shown) {
      // No 16 characters of the value's base64 (any alignment) survive on any line.
      for (const encoded of [whole, ...wrappedBase64(`x${credentials}`, 1000)]) {
        for (let i = 4; i + 16 <= encoded.length - 4; i += 4) {
          expect(line).not.toContain(encoded.slice(i, i + 16));
        }
      }
    }
    expect(shown.filter((line) => line.includes(R)).length).toBeGreaterThan(lines.length / 2);
  });

  it("leaves unrelated wrapped base64 alone", () => {
    const secrets = createSecretValues([credentials]);
    const sanitizer = createLineSanitizer({ secrets });
    for (const line of wrappedBase64(
      "an unrelated file that is long enough to wrap ".repeat(8),
      76,
    )) {
      expect(sanitizer.sanitize(line)).toBe(line);
    }
  });
});

describe("::add-mask::", () => {
  it("masks the value from that line on, on every stream sharing the values", () => {
    const secrets = createSecretValues();
    const stdout = createLineSanitizer({ secrets });
    const stderr = createLineSanitizer({ secrets });
    const value = "runtime-Secret-9f3k2";
    expect(stderr.sanitize(`before: ${value}`)).toBe(`before: ${value}`);
    expect(stdout.sanitize(`::add-mask::${value}`)).toBe(`::add-mask::${R}`);
    expect(stderr.sanitize(`after: ${value}`)).toBe(`after: ${R}`);
    expect(stdout.sanitize(`encoded: ${encodeURIComponent(`${value}/`)}`)).toBe(`encoded: ${R}%2F`);
    expect(secrets.size).toBe(1);
  });

  it("takes the value from a shell trace of the command, without its quote", () => {
    const sanitizer = createLineSanitizer();
    expect(sanitizer.sanitize('+ echo "::add-mask::Trace-Value-123"')).toBe(
      `+ echo "::add-mask::${R}`,
    );
    expect(sanitizer.sanitize("Trace-Value-123 used")).toBe(`${R} used`);
  });

  it("shows the line without a value too short to mask, and registers nothing", () => {
    const secrets = createSecretValues();
    const sanitizer = createLineSanitizer({ secrets });
    expect(sanitizer.sanitize("::add-mask::abc")).toBe(`::add-mask::${R}`);
    expect(secrets.size).toBe(0);
    expect(sanitizer.sanitize("abc stays")).toBe("abc stays");
  });
});

describe("where a long line may be cut", () => {
  it("moves the cut before a value that straddles it, whole or only begun", () => {
    const value = "Straddling-Secret-0123456789";
    const secrets = createSecretValues([value]);
    const text = `${"a".repeat(100)}${value}${"b".repeat(10)}`;
    expect(secrets.safeCut(text, 110)).toBe(100);
    expect(secrets.safeCut(text, 100)).toBe(100);
    expect(secrets.safeCut(text, 130)).toBe(130);
    // Only its first 12 characters have arrived yet.
    expect(secrets.safeCut(`${"a".repeat(100)}${value.slice(0, 12)}`, 105)).toBe(100);
    expect(secrets.safeCut(`${"a".repeat(100)}${encodeURIComponent(`${value}!`)}`, 110)).toBe(100);
  });
});
