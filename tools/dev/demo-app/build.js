// A tiny static-site build: renders pages/*.txt into dist/*.html, with the progress bar and
// colours a real build prints, and (for the demo) a line that leaks its deploy token.
const fs = require("node:fs");
const path = require("node:path");
const pages = {
  "index.txt": "Welcome to Acme",
  "pricing.txt": "Plans from $9",
  "about.txt": "Made with care",
};
fs.mkdirSync("pages", { recursive: true });
for (const [name, text] of Object.entries(pages)) fs.writeFileSync(path.join("pages", name), text);
fs.mkdirSync("dist", { recursive: true });
const files = fs.readdirSync("pages");
const wait = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
(async () => {
  console.log("\u001b[1mdemo-landing-page\u001b[22m building %d pages", files.length);
  for (let i = 0; i <= 20; i++) {
    process.stdout.write(`\r[${"#".repeat(i)}${" ".repeat(20 - i)}] ${i * 5}%`);
    await wait(60);
  }
  process.stdout.write("\n");
  for (const file of files) {
    const html = `<!doctype html><title>${file}</title><h1>${fs.readFileSync(path.join("pages", file), "utf8")}</h1>`;
    const out = path.join("dist", file.replace(/\.txt$/, ".html"));
    fs.writeFileSync(out, html);
    console.log(`  \u001b[32m✓\u001b[39m ${out}  ${html.length} B`);
    await wait(150);
  }
  console.error("\u001b[33mwarning\u001b[39m: no favicon.ico found");
  console.log(`deploying with DEPLOY_TOKEN=${process.env.DEPLOY_TOKEN}`);
  console.log(
    `Authorization: Basic ${Buffer.from(`ci:${process.env.DEPLOY_TOKEN}`).toString("base64")}`,
  );
  console.log("\u001b[32mBuild complete\u001b[39m");
})();
