import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { workerConfig } from "../../src/config.ts";

function problemWith(url: string | undefined): string | null {
  try {
    // "" is how the dashboard and .dev.vars leave a variable unset.
    workerConfig({ ...env, RUNNER_URL: url ?? "" });
    return null;
  } catch (error) {
    return error instanceof Error ? error.message : String(error);
  }
}

// Job specs (commands, files) and the runner token cross RUNNER_URL.
describe("RUNNER_URL", () => {
  it.each([
    "https://runner.example.com",
    "http://127.0.0.1:8788",
    "http://127.9.9.9:1",
    "http://localhost:8788",
    "http://[::1]:8788",
  ])("accepts %s", (url) => {
    expect(problemWith(url)).toBeNull();
  });

  it.each([
    "http://runner.example.com",
    "http://10.0.0.5:8788",
    "http://127.0.0.1.example.com",
    "ftp://127.0.0.1",
    "not a url",
    undefined,
  ])("refuses %s, naming the variable", (url) => {
    expect(problemWith(url)).toMatch(/RUNNER_URL/);
  });
});
