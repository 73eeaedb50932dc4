// npm run check:bundle (in .ci/run): proves the Worker bundles as `wrangler deploy` would build
// it (`--dry-run`: everything but the upload, no account needed) and that wrangler.toml's
// production [vars] hold no loopback URL (local development sets those in .dev.vars).
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const LOOPBACK_URL = /^https?:\/\/(localhost|127(\.\d{1,3}){3}|\[::1\]|0\.0\.0\.0)(:|\/|$)/i;

const outdir = mkdtempSync(join(tmpdir(), "build-log-stream-bundle-"));
try {
  execFileSync("wrangler", ["deploy", "--dry-run", "--outdir", outdir], {
    stdio: ["ignore", "ignore", "inherit"],
  });
  const size = statSync(join(outdir, "index.js")).size;
  const { unstable_readConfig } = await import("wrangler");
  const config = unstable_readConfig({ config: "wrangler.toml" }, { hideWarnings: true });
  const loopback = Object.entries(config.vars).filter(
    ([, value]) => typeof value === "string" && LOOPBACK_URL.test(value),
  );
  if (loopback.length > 0) {
    console.error(
      `wrangler.toml's [vars] point production at this machine: ${loopback.map(([name, value]) => `${name}=${String(value)}`).join(", ")}; set them per deployment and in .dev.vars`,
    );
    process.exit(1);
  }
  console.log(
    `the Worker bundles: index.js ${(size / 1024).toFixed(0)} KiB; no loopback URL in wrangler.toml's [vars]`,
  );
} finally {
  rmSync(outdir, { recursive: true, force: true });
}
