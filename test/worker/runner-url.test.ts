import { describe, expect, it } from "vitest";
import { runnerUrlProblem } from "../../src/jobs/dispatcher.ts";

// Job specs (commands, files) and the runner token cross RUNNER_URL.
describe("RUNNER_URL", () => {
  it.each([
    "https://runner.example.com",
    "http://127.0.0.1:8788",
    "http://127.9.9.9:1",
    "http://localhost:8788",
    "http://[::1]:8788",
  ])("accepts %s", (url) => {
    expect(runnerUrlProblem(url)).toBeNull();
  });

  it.each([
    "http://runner.example.com",
    "http://10.0.0.5:8788",
    "http://127.0.0.1.example.com",
    "ftp://127.0.0.1",
    "not a url",
    undefined,
  ])("refuses %s, naming the variable", (url) => {
    expect(runnerUrlProblem(url)).toMatch(/RUNNER_URL/);
  });
});
