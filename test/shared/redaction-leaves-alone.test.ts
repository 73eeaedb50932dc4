import { describe, expect, it } from "vitest";
import { createLineSanitizer } from "../../src/shared/sanitize/line-sanitizer.ts";
import { redactSecretPatterns } from "../../src/shared/sanitize/redact-patterns.ts";

// What redaction must leave byte for byte (issue 11): lines that look like they hold a secret
// and do not. Real npm, vite, tsc, next and webpack output is held to it in bulk by
// redaction-score.test.ts; these are the shapes one at a time.
const unchanged = (line: string): void => {
  expect(redactSecretPatterns(line)).toBe(line);
  expect(createLineSanitizer().sanitize(line)).toBe(line);
};

describe("connection URLs without credentials, or with placeholders for them", () => {
  it.each([
    "postgres://localhost:5432/app",
    "DATABASE_URL=postgres://db.internal:5432/app?sslmode=require",
    "redis://cache:6379/0",
    "postgres://${DB_USER}:${DB_PASSWORD}@${DB_HOST}:5432/app",
    "postgres://$DB_USER:$DB_PASSWORD@localhost/app",
    "mysql://$(MYSQL_USER):$(MYSQL_PASSWORD)@db/app",
    "redis://:{{ redis_password }}@cache:6379",
    "postgresql://<user>:<password>@<host>/<db>",
    "amqp://[user]:[password]@rabbit/vhost",
    "mongodb+srv://YOUR_USERNAME:YOUR_PASSWORD@cluster0.mongodb.net",
    "https://REPLACE_WITH_USER:REPLACE_WITH_TOKEN@github.com/acme/app.git",
    "DATABASE_URL=postgresql://USER:PASSWORD@HOST:5432/DB",
    "git clone https://${GITHUB_TOKEN}@github.com/acme/app.git",
    "https://$GH_TOKEN:x-oauth-basic@github.com/acme/app",
    "ssh://git@github.com/acme/app.git",
    "npm http fetch GET 200 https://registry.example.com/@tanstack%2freact-query 52ms (cache miss)",
    "  resolved: https://registry.example.com/@types/node/-/node-22.10.1.tgz",
  ])("%s", unchanged);
});

describe("identifiers that merely begin like a token", () => {
  it.each([
    "static int hf_registerProtocolHandoffWithDissector = -1;",
    "- (void)hf_configureSessionWithDelegateQueueAndTimeout;",
    "  proto_register_field_array(proto_foo, hf_fooRegisterInfoArrayForTheDissector, 3);",
    "export const sk_componentsLibraryDefaultTheme = {};",
    "import { ghp_internalHelperFunctionForTests } from './x'",
  ])("%s", unchanged);
});

describe("trivial values, shell variables and placeholders", () => {
  it.each([
    "Password=0",
    "password=1",
    "TOKEN=true",
    "SECRET_KEY=changeme",
    "API_KEY=<YOUR_API_KEY>",
    'apiKey: "YOUR_API_KEY_HERE"',
    "password: ${{ secrets.DB_PASSWORD }}",
    "mysql -u root --password $DB_PASSWORD app",
    'docker login -u ci -p "$REGISTRY_PASSWORD" ghcr.io',
    'redis-cli -a "$REDIS_PASSWORD" ping',
    "curl -u $USER:$PASS https://example.com",
    "--api-key=<your-api-key>",
    "--token %NPM_TOKEN%",
    "npm config set //registry.example.com/:_authToken ${NPM_TOKEN}",
    "BUNDLE_GEMS__CONTRIBSYS__COM=${SIDEKIQ_USER}:${SIDEKIQ_PASSWORD}",
  ])("%s", unchanged);
});

describe("backticked commands after KEY=", () => {
  it.each([
    "export GITHUB_TOKEN=`gh auth token`",
    "TOKEN=`vault read -field=token secret/ci`",
    "SECRET=$(openssl rand -hex 32)",
    "NPM_TOKEN=`cat ~/.npmrc | grep authToken | cut -d= -f2`",
  ])("%s", unchanged);
});

describe("prose after a secret word", () => {
  it.each([
    "Cache restored from key: node-cache-Linux-x64-npm-5c2e1f0b7a9d",
    "npm error Unable to authenticate, your authentication token seems to be invalid.",
    "Setting token to expire in 3600 seconds",
    "the password for user deploy is required",
    "Generated secret 'webhook-signing-secret-name' for the webhook",
  ])("%s", unchanged);
});
