// npm run doctor [-- --env-file FILE]... [--config wrangler.toml]: checks a deployment's settings
// and names each one missing or wrong (exit 1), or says they look right (exit 0).
// Where values come from, later ones winning: wrangler.toml's [vars], then each --env-file
// (KEY=value lines, as `wrangler secret bulk` and container hosts take them), then this
// process's environment for the names the checks know.
import { readFileSync } from "node:fs";
import { parseArgs, parseEnv } from "node:util";
import { checkDeployment, RUNNER_REQUIRED, type Settings, WORKER_REQUIRED } from "./checks.ts";

const KNOWN = new Set<string>([
  ...WORKER_REQUIRED,
  ...RUNNER_REQUIRED,
  "CLERK_JWT_KEY",
  "CLERK_SECRET_KEY",
  "CLERK_API_URL",
  "CORS_ORIGINS",
  "DEV_SIGN_IN",
  "S3_ENDPOINT",
  "S3_BUCKET",
  "S3_REGION",
  "S3_ACCESS_KEY_ID",
  "S3_SECRET_ACCESS_KEY",
]);

async function wranglerVars(configPath: string): Promise<Record<string, string>> {
  // Wrangler's own reader: the same [vars] a deploy would upload (imported late: it is large).
  const { unstable_readConfig } = await import("wrangler");
  const config = unstable_readConfig({ config: configPath }, { hideWarnings: true });
  const vars: Record<string, string> = {};
  for (const [name, raw] of Object.entries(config.vars))
    if (typeof raw === "string") vars[name] = raw;
  return vars;
}

const { values } = parseArgs({
  options: {
    "env-file": { type: "string", multiple: true, default: [] },
    config: { type: "string", default: "wrangler.toml" },
    "no-config": { type: "boolean", default: false },
  },
});

const settings: Record<string, string | undefined> = values["no-config"]
  ? {}
  : await wranglerVars(values.config);
for (const file of values["env-file"])
  Object.assign(settings, parseEnv(readFileSync(file, "utf8")));
for (const name of KNOWN) if (process.env[name] !== undefined) settings[name] = process.env[name];

const findings = checkDeployment(settings as Settings);
const problems = findings.filter((finding) => finding.level === "problem");
for (const finding of findings)
  console.log(`${finding.level === "problem" ? "✗" : "!"} ${finding.name} ${finding.message}`);
if (problems.length > 0) {
  console.log(
    `\n${problems.length} problem${problems.length === 1 ? "" : "s"}: the deployment's settings need fixing (see DEPLOY.md).`,
  );
  process.exit(1);
}
console.log(
  `✓ the deployment's settings look right (${Object.keys(settings).length} read${findings.length > 0 ? `, ${findings.length} warning(s)` : ""})`,
);
