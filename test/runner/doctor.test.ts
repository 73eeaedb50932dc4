import { execFile } from "node:child_process";
import { generateKeyPairSync, randomBytes } from "node:crypto";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { checkDeployment, type Settings } from "../../tools/doctor/checks.ts";

const run = promisify(execFile);
const secret = (): string => randomBytes(32).toString("base64");
const pem = generateKeyPairSync("rsa", { modulusLength: 2048 })
  .publicKey.export({ type: "spki", format: "pem" })
  .toString()
  .trim();

/** A production deployment's settings, every one right. */
const GOOD: Settings = {
  UPSTASH_REDIS_REST_URL: "https://eu1-quiet-lark-12345.upstash.io",
  UPSTASH_REDIS_REST_TOKEN: randomBytes(45).toString("base64url"),
  RUNNER_URL: "https://runner.logs.acme.dev",
  RUNNER_TOKEN: secret(),
  CLERK_JWT_KEY: pem,
  CLERK_AUTHORIZED_PARTIES: "https://app.acme.dev",
  CORS_ORIGINS: "https://app.acme.dev",
  STREAM_TICKET_SECRET: secret(),
  JOB_SECRETS_KEY: secret(),
  WORKER_URL: "https://logs.acme.dev",
  SANDBOX: "e2b",
  E2B_API_KEY: `e2b_${randomBytes(20).toString("hex")}`,
  NODE_ENV: "production",
  DEV_SIGN_IN: "",
};

const names = (settings: Settings): string[] =>
  checkDeployment(settings)
    .filter((finding) => finding.level === "problem")
    .map((finding) => finding.name);

describe("the deployment doctor's checks", () => {
  it("finds nothing wrong with a right deployment", () => {
    expect(checkDeployment(GOOD)).toEqual([]);
    expect(
      checkDeployment({
        ...GOOD,
        CLERK_JWT_KEY: undefined,
        CLERK_SECRET_KEY: `sk_live_${randomBytes(20).toString("hex")}`,
      }),
    ).toEqual([]);
  });

  it("names every variable that is not set", () => {
    expect(names({}).sort()).toEqual(
      [
        "CLERK_AUTHORIZED_PARTIES",
        "CLERK_JWT_KEY, CLERK_SECRET_KEY",
        "E2B_API_KEY",
        "JOB_SECRETS_KEY",
        "NODE_ENV",
        "RUNNER_TOKEN",
        "RUNNER_URL",
        "SANDBOX",
        "STREAM_TICKET_SECRET",
        "UPSTASH_REDIS_REST_TOKEN",
        "UPSTASH_REDIS_REST_URL",
        "WORKER_URL",
      ].sort(),
    );
    expect(checkDeployment({ ...GOOD, RUNNER_URL: " " })).toEqual([
      { name: "RUNNER_URL", level: "problem", message: "is not set" },
    ]);
  });

  it.each([
    ["UPSTASH_REDIS_REST_URL", "http://eu1-quiet-lark-12345.upstash.io", /https/],
    ["RUNNER_URL", "http://127.0.0.1:8788", /https/],
    ["RUNNER_URL", "https://localhost:8788", /loopback/],
    ["WORKER_URL", "not a url", /not a URL/],
    ["UPSTASH_REDIS_REST_TOKEN", "AbCd1234", /8 characters/],
    ["RUNNER_TOKEN", "dev-runner-token", /16 characters.*at least 32/],
    ["STREAM_TICKET_SECRET", "short", /at least 32/],
    ["JOB_SECRETS_KEY", randomBytes(16).toString("base64"), /32 bytes/],
    ["JOB_SECRETS_KEY", "replace-with-the-output-of-openssl-rand-base64-32", /placeholder/],
    [
      "CLERK_JWT_KEY",
      "-----BEGIN PUBLIC KEY-----\nreplace-with-your-instance-public-key\n-----END PUBLIC KEY-----",
      /PEM public key/,
    ],
    ["CLERK_JWT_KEY", "pk_live_Y2xlcmsuYWNtZS5kZXYk", /PEM public key/],
    ["CLERK_AUTHORIZED_PARTIES", "https://app.acme.dev/", /https origins/],
    ["CLERK_AUTHORIZED_PARTIES", "http://app.acme.dev", /https origins/],
    ["CORS_ORIGINS", "*", /https origins/],
    ["DEV_SIGN_IN", "1", /must not be set in production/],
    ["SANDBOX", "local", /E2B/],
    ["E2B_API_KEY", "sk-123", /not an E2B API key/],
    ["NODE_ENV", "development", /NODE_ENV=production/],
  ])("names %s when it is %j", (name, wrong, message) => {
    const findings = checkDeployment({ ...GOOD, [name]: wrong }).filter(
      (finding) => finding.level === "problem",
    );
    const messages = findings
      .filter((finding) => finding.name === name)
      .map((finding) => finding.message);
    expect(messages).toContainEqual(expect.stringMatching(message));
  });

  it("names a Clerk secret key of the wrong shape, and warns about a development instance's", () => {
    expect(names({ ...GOOD, CLERK_JWT_KEY: undefined, CLERK_SECRET_KEY: "pk_test_abc" })).toEqual([
      "CLERK_SECRET_KEY",
    ]);
    expect(
      checkDeployment({
        ...GOOD,
        CLERK_JWT_KEY: undefined,
        CLERK_SECRET_KEY: `sk_test_${randomBytes(20).toString("hex")}`,
      }),
    ).toMatchObject([{ name: "CLERK_SECRET_KEY", level: "warning" }]);
  });

  it("asks for all five S3 variables or none", () => {
    expect(
      names({ ...GOOD, S3_ENDPOINT: "https://s3.eu-west-1.amazonaws.com", S3_BUCKET: "logs" }),
    ).toEqual(["S3_REGION, S3_ACCESS_KEY_ID, S3_SECRET_ACCESS_KEY"]);
  });
});

describe("npm run doctor", () => {
  let dir = "";
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "doctor-"));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  const envFile = async (name: string, settings: Settings): Promise<string> => {
    const path = join(dir, name);
    const lines = Object.entries(settings).map(
      ([key, raw]) => `${key}=${JSON.stringify(raw ?? "")}`,
    );
    await writeFile(path, `${lines.join("\n")}\n`);
    return path;
  };
  const doctor = async (args: string[]): Promise<{ code: number; out: string }> => {
    try {
      const { stdout } = await run(process.execPath, ["tools/doctor/cli.ts", ...args], {
        env: { PATH: process.env.PATH ?? "" },
      });
      return { code: 0, out: stdout };
    } catch (error) {
      const failed = error as { code: number; stdout: string };
      return { code: failed.code, out: failed.stdout };
    }
  };

  it("exits 1 and names what is wrong", async () => {
    const file = await envFile("bad.env", {
      ...GOOD,
      RUNNER_URL: "http://127.0.0.1:8788",
      STREAM_TICKET_SECRET: undefined,
    });
    const { code, out } = await doctor(["--no-config", "--env-file", file]);
    expect(code).toBe(1);
    expect(out).toContain("✗ RUNNER_URL must be https://");
    expect(out).toContain("✗ STREAM_TICKET_SECRET is not set");
    expect(out).toContain("2 problems");
  });

  it("exits 0 for a right deployment read with the repository's wrangler.toml", async () => {
    const file = await envFile("good.env", GOOD);
    const { code, out } = await doctor(["--env-file", file]);
    expect(out).toMatch(/✓ the deployment's settings look right/);
    expect(code).toBe(0);
  });
});
