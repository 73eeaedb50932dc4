import { describe, expect, it } from "vitest";
import { jsonLogger, scopedLogger } from "../../src/shared/log.ts";

function capture() {
  const lines: { stream: string; line: string }[] = [];
  const sink = {
    log: (line: string) => lines.push({ stream: "log", line }),
    warn: (line: string) => lines.push({ stream: "warn", line }),
    error: (line: string) => lines.push({ stream: "error", line }),
  };
  return { lines, logger: jsonLogger(sink, () => new Date("2026-12-02T00:00:00.000Z")) };
}

describe("jsonLogger", () => {
  it("writes one JSON object per event, with the error beside the message", () => {
    const { lines, logger } = capture();
    logger.info("JobStream:job_1 admitted a viewer");
    logger.error("sweep: archiving job job_2 failed", new TypeError("fetch failed"));
    logger.warn("build-log-stream: dropped a malformed queue message", [{ path: ["job_id"] }]);
    expect(lines.map((entry) => entry.stream)).toEqual(["log", "error", "warn"]);
    const events = lines.map((entry) => JSON.parse(entry.line) as Record<string, unknown>);
    expect(events[0]).toEqual({
      ts: "2026-12-02T00:00:00.000Z",
      level: "info",
      message: "JobStream:job_1 admitted a viewer",
    });
    expect(events[1]).toMatchObject({
      level: "error",
      error: { name: "TypeError", message: "fetch failed" },
    });
    expect(events[2]).toMatchObject({ level: "warn", detail: [{ path: ["job_id"] }] });
    for (const { line } of lines) expect(line).not.toContain("\n");
  });

  it("cuts credentials out of what errors carry", () => {
    const { lines, logger } = capture();
    logger.error(
      "runner: the Worker refused a call",
      new Error(
        "401 for https://runner:s3cretPassw0rd@example.com with Authorization: Bearer abc.def.ghi",
      ),
    );
    const line = lines[0]?.line ?? "";
    expect(line).not.toContain("s3cretPassw0rd");
    expect(line).not.toContain("abc.def.ghi");
    expect(line).toContain("Bearer [REDACTED]");
    expect(line).toContain("https://runner:[REDACTED]@example.com");
    logger.info("runner: listening on http://127.0.0.1:8788, sandbox local");
    expect(lines[1]?.line).toContain("http://127.0.0.1:8788,");
  });

  it("keeps a scoped logger's scope in front of its message", () => {
    const lines: string[] = [];
    const sink = {
      log: (line: string) => lines.push(line),
      warn: () => undefined,
      error: () => undefined,
    };
    scopedLogger("JobStream:job_1", sink).info("admitted a viewer");
    expect(JSON.parse(lines[0] ?? "{}")).toMatchObject({
      level: "info",
      message: "JobStream:job_1: admitted a viewer",
    });
  });
});
