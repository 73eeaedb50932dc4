// What `npm run doctor` checks: a production deployment's settings, the Worker's and the
// runner's (the same names where they must hold the same value). Pure: settings in, findings
// out, so every rule is tested without a deployment.
import { jobSecretsKeyProblem } from "../../src/shared/job-secrets.ts";

export type Settings = Readonly<Record<string, string | undefined>>;

export interface Finding {
  /** The variable (or variables, comma-separated) the finding is about. */
  readonly name: string;
  /** `problem`: the deployment will not work, or not safely (exit 1). `warning`: worth a look. */
  readonly level: "problem" | "warning";
  readonly message: string;
}

/** Secrets and tokens shorter than this are guessable or truncated (`openssl rand -base64 32` is 44). */
export const MIN_SECRET_LENGTH = 32;
// Upstash's REST tokens are about 60 characters of base64; a much shorter one is cut off.
const MIN_UPSTASH_TOKEN_LENGTH = 40;
const PLACEHOLDER = /replace-with|example\.(com|org)|changeme|<[^>]*>|^x+$|^todo$/i;
const LOOPBACK = /^(localhost|127(\.\d{1,3}){3}|\[::1\]|0\.0\.0\.0)$/;

/** Every variable a production deployment needs, by side: what the doctor reports as missing. */
export const WORKER_REQUIRED = [
  "UPSTASH_REDIS_REST_URL",
  "UPSTASH_REDIS_REST_TOKEN",
  "RUNNER_URL",
  "RUNNER_TOKEN",
  "CLERK_AUTHORIZED_PARTIES",
  "STREAM_TICKET_SECRET",
  "JOB_SECRETS_KEY",
] as const;
export const RUNNER_REQUIRED = ["WORKER_URL", "SANDBOX", "E2B_API_KEY", "NODE_ENV"] as const;

const value = (settings: Settings, name: string): string | undefined => {
  const raw = settings[name]?.trim();
  return raw === undefined || raw === "" ? undefined : raw;
};

function httpsUrlProblem(text: string): string | null {
  if (!URL.canParse(text)) return "is not a URL";
  const url = new URL(text);
  if (url.protocol !== "https:") return `must be https:// (is ${url.protocol}//)`;
  if (LOOPBACK.test(url.hostname))
    return "points at this machine (loopback): production cannot reach it";
  return null;
}

function originsProblem(list: string): string | null {
  const items = list
    .split(",")
    .map((item) => item.trim())
    .filter((item) => item !== "");
  const bad = items.filter(
    (item) =>
      !URL.canParse(item) || new URL(item).origin !== item || new URL(item).protocol !== "https:",
  );
  return bad.length === 0
    ? null
    : `must list https origins such as https://app.example.com (no path, no trailing slash): ${bad.map((item) => JSON.stringify(item)).join(", ")}`;
}

const PEM_PUBLIC_KEY =
  /^-----BEGIN PUBLIC KEY-----\s+([A-Za-z0-9+/=\s]+?)\s+-----END PUBLIC KEY-----$/;
const CLERK_SECRET_KEY = /^sk_(live|test)_[A-Za-z0-9]{20,}$/;
const E2B_API_KEY = /^e2b_[A-Za-z0-9]{20,}$/;

/** The findings for one deployment's settings; none means it looks right. */
export function checkDeployment(settings: Settings): Finding[] {
  const findings: Finding[] = [];
  const problem = (name: string, message: string): void =>
    void findings.push({ name, level: "problem", message });
  const warning = (name: string, message: string): void =>
    void findings.push({ name, level: "warning", message });

  for (const name of [...WORKER_REQUIRED, ...RUNNER_REQUIRED]) {
    if (value(settings, name) === undefined) problem(name, "is not set");
  }
  for (const [name, raw] of Object.entries(settings)) {
    if (
      raw !== undefined &&
      raw.trim() !== "" &&
      PLACEHOLDER.test(raw.trim()) &&
      !name.endsWith("CORS_ORIGINS")
    )
      problem(name, "still holds the example's placeholder");
  }

  for (const name of [
    "UPSTASH_REDIS_REST_URL",
    "RUNNER_URL",
    "WORKER_URL",
    "CLERK_API_URL",
    "S3_ENDPOINT",
  ]) {
    const url = value(settings, name);
    const why = url === undefined ? null : httpsUrlProblem(url);
    if (why !== null) problem(name, why);
  }

  const upstashToken = value(settings, "UPSTASH_REDIS_REST_TOKEN");
  if (upstashToken !== undefined && upstashToken.length < MIN_UPSTASH_TOKEN_LENGTH)
    problem(
      "UPSTASH_REDIS_REST_TOKEN",
      `is ${upstashToken.length} characters; Upstash's REST tokens are about 60 (copy the whole "REST token" from the database's page)`,
    );
  for (const name of ["RUNNER_TOKEN", "STREAM_TICKET_SECRET"]) {
    const secret = value(settings, name);
    if (secret !== undefined && secret.length < MIN_SECRET_LENGTH)
      problem(
        name,
        `is ${secret.length} characters; use at least ${MIN_SECRET_LENGTH} (openssl rand -base64 32)`,
      );
  }
  const sealingKey = value(settings, "JOB_SECRETS_KEY");
  const sealingProblem = sealingKey === undefined ? null : jobSecretsKeyProblem(sealingKey);
  if (sealingProblem !== null)
    problem("JOB_SECRETS_KEY", sealingProblem.replace(/^JOB_SECRETS_KEY /, ""));

  // Clerk: one of the two ways to verify a session, each in its own shape.
  const jwtKey = value(settings, "CLERK_JWT_KEY");
  const secretKey = value(settings, "CLERK_SECRET_KEY");
  if (jwtKey === undefined && secretKey === undefined)
    problem(
      "CLERK_JWT_KEY, CLERK_SECRET_KEY",
      "neither is set: set CLERK_JWT_KEY (the PEM public key, verifies offline) or CLERK_SECRET_KEY",
    );
  if (jwtKey !== undefined) {
    const body = PEM_PUBLIC_KEY.exec(jwtKey.replaceAll("\\n", "\n"))?.[1]?.replace(/\s+/g, "");
    if (body === undefined || body.length < 200)
      problem(
        "CLERK_JWT_KEY",
        'is not a PEM public key (-----BEGIN PUBLIC KEY----- ... -----END PUBLIC KEY-----, from Clerk\'s API keys page, "JWT public key")',
      );
  }
  if (secretKey !== undefined) {
    const shape = CLERK_SECRET_KEY.exec(secretKey);
    if (shape === null)
      problem("CLERK_SECRET_KEY", "is not a Clerk secret key (sk_live_... or sk_test_...)");
    else if (shape[1] === "test")
      warning(
        "CLERK_SECRET_KEY",
        "is a development instance's key (sk_test_): production users sign in to a production instance",
      );
  }
  const parties = value(settings, "CLERK_AUTHORIZED_PARTIES");
  const partiesWhy = parties === undefined ? null : originsProblem(parties);
  if (partiesWhy !== null) problem("CLERK_AUTHORIZED_PARTIES", partiesWhy);
  const cors = value(settings, "CORS_ORIGINS");
  const corsWhy = cors === undefined ? null : originsProblem(cors);
  if (corsWhy !== null) problem("CORS_ORIGINS", corsWhy);

  if (value(settings, "DEV_SIGN_IN") !== undefined)
    problem(
      "DEV_SIGN_IN",
      "must not be set in production: it lets anyone with a development token sign in",
    );

  const s3 = ["S3_ENDPOINT", "S3_BUCKET", "S3_REGION", "S3_ACCESS_KEY_ID", "S3_SECRET_ACCESS_KEY"];
  const s3Set = s3.filter((name) => value(settings, name) !== undefined);
  if (s3Set.length > 0 && s3Set.length < s3.length)
    problem(
      s3.filter((name) => !s3Set.includes(name)).join(", "),
      "an S3 archive needs all five S3_ variables (or none: the R2 binding)",
    );

  // The runner's side.
  const sandbox = value(settings, "SANDBOX");
  if (sandbox !== undefined && sandbox !== "e2b")
    problem(
      "SANDBOX",
      `is ${JSON.stringify(sandbox)}; production runs strangers' builds in E2B (SANDBOX=e2b)`,
    );
  const e2bKey = value(settings, "E2B_API_KEY");
  if (e2bKey !== undefined && !E2B_API_KEY.test(e2bKey))
    problem("E2B_API_KEY", "is not an E2B API key (e2b_..., from the E2B dashboard's API keys)");
  const nodeEnv = value(settings, "NODE_ENV");
  if (nodeEnv !== undefined && nodeEnv !== "production")
    problem(
      "NODE_ENV",
      `is ${JSON.stringify(nodeEnv)}; the runner's production checks need NODE_ENV=production`,
    );
  return findings;
}
