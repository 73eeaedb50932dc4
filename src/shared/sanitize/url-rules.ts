import { isLabelledSecret } from "./label-names.ts";
import { REDACTED } from "./redacted.ts";
import { indexFrom, regexRule, type SecretPattern } from "./secret-pattern.ts";
import { isNotSecretValue, looksGenerated } from "./value-shapes.ts";

// ---------------------------------------------------------------------------------------------
// URLs: credentials in the user info, signed and token-bearing query parameters, webhooks.

// A database URL with a password goes whole: user, host and database name say too much next
// to it. `mongodb+srv`, `postgresql+asyncpg` (SQLAlchemy) and `jdbc:` prefixes included.
const DATABASE_SCHEME =
  /^(?:jdbc:)?(?:postgres(?:ql)?|redis|rediss|valkeys?|mongodb|mysqlx?|mariadb|mssql|sqlserver|cockroach(?:db)?|clickhouse|amqps?|couchdb|neo4j|bolt|oracle|cassandra|memcached|libsql|db2|snowflake|nats|kafka)(?:\+[a-z0-9]+)?$/i;
const SCHEME_CHARACTER = /[A-Za-z0-9+.:-]/;
// What ends the authority (or, for a database URL, the whole URL) in a log line.
const AUTHORITY_END = /[\s/?#"'`<>\\]/g;
const URL_END = /[\s"'`<>\\]/g;
// Passwords that say "the user name is the token": GitHub's x-oauth-basic, and the like.
const TOKEN_USER_PASSWORDS = new Set(["x-oauth-basic", "x-oauth", "x", "x-token", "oauth2", ""]);
const TOKEN_USER = /^[A-Za-z0-9_-]{20,}$/;

/**
 * scheme://user:password@host keeps scheme, user and host; a user that is itself a token
 * (https://TOKEN@host, https://TOKEN:x-oauth-basic@host) goes; a database URL goes whole.
 * Written as a scan from each "://" rather than a regex, so that it costs one pass over the
 * authority, and the last @ before the host is the separator (a password may hold an @).
 */
function redactUrlUserinfo(line: string): string {
  let out = "";
  let copied = 0;
  for (let at = line.indexOf("://"); at !== -1; at = line.indexOf("://", at + 3)) {
    if (at < copied) continue;
    let schemeStart = at;
    while (
      schemeStart > 0 &&
      at - schemeStart < 40 &&
      SCHEME_CHARACTER.test(line.charAt(schemeStart - 1))
    )
      schemeStart--;
    const authorityStart = at + 3;
    const authorityEnd = indexFrom(AUTHORITY_END, line, authorityStart);
    const separator = line.lastIndexOf("@", authorityEnd - 1);
    if (separator < authorityStart || schemeStart === at) continue;
    const userinfo = line.slice(authorityStart, separator);
    const colon = userinfo.indexOf(":");
    const user = colon === -1 ? userinfo : userinfo.slice(0, colon);
    const password = colon === -1 ? "" : userinfo.slice(colon + 1);
    const passwordIsSecret =
      colon !== -1 &&
      !TOKEN_USER_PASSWORDS.has(password.toLowerCase()) &&
      !isNotSecretValue(password);
    const userIsToken =
      TOKEN_USER_PASSWORDS.has(password.toLowerCase()) &&
      TOKEN_USER.test(user) &&
      !isNotSecretValue(user);
    if (!passwordIsSecret && !userIsToken) continue;
    const scheme = line.slice(schemeStart, at);
    if (passwordIsSecret && DATABASE_SCHEME.test(scheme)) {
      const urlEnd = indexFrom(URL_END, line, separator);
      out += line.slice(copied, schemeStart) + REDACTED;
      copied = urlEnd;
      continue;
    }
    const keptUser = userIsToken || looksGenerated(user) ? REDACTED : user;
    const keptPassword = colon === -1 ? "" : passwordIsSecret ? `:${REDACTED}` : `:${password}`;
    out += line.slice(copied, authorityStart) + keptUser + keptPassword;
    copied = separator;
  }
  return copied === 0 ? line : out + line.slice(copied);
}

export const URL_USERINFO: SecretPattern = {
  id: "url-userinfo",
  keywords: ["://"],
  alsoKeywords: ["@"],
  gate: String.raw`://[^\s/?#@]{0,512}@`,
  redact: redactUrlUserinfo,
};

// Slack/Discord/Teams webhook URLs are bearer credentials; the host stays so a reader knows what leaked.
export const WEBHOOK_URL = regexRule(
  "webhook-url",
  ["hooks.slack.com", "/api/webhooks/", "webhook.office.com", "hooks.zapier.com"],
  /(https?:\/\/(?:hooks\.zapier\.com\/hooks\/catch\/|hooks\.slack\.com\/(?:services|workflows|triggers)\/|(?:ptb\.|canary\.)?discord(?:app)?\.com\/api\/(?:v\d{1,2}\/)?webhooks\/|[A-Za-z0-9-]{1,64}\.webhook\.office\.com\/webhookb2\/))[A-Za-z0-9_@/+.-]+/g,
  (_match, prefix = "") => prefix + REDACTED,
);

const SIGNED_URL_PARAMETERS = new Set([
  "x-amz-signature",
  "x-amz-credential",
  "x-amz-security-token",
  "x-goog-signature",
  "x-goog-credential",
  "x-goog-security-token",
  "signature",
  "sig",
  "token",
  "access_token",
  "refresh_token",
  "id_token",
  "client_secret",
  "api_key",
  "apikey",
  "api-key",
  "key",
  "password",
  "secret",
  "auth",
  "jwt",
  "session_token",
  "private_token",
]);

export const QUERY_PARAMETER = regexRule(
  "query-parameter",
  ["sig", "token", "key", "secret", "pass", "pwd", "auth", "cred", "jwt", "pat"],
  /([?&])([A-Za-z][A-Za-z0-9_.-]{0,63})=([^&#\s"'`<>\\)\],;]+)/g,
  (match, separator = "", name = "", value = "") => {
    const secret = SIGNED_URL_PARAMETERS.has(name.toLowerCase())
      ? !isNotSecretValue(value)
      : isLabelledSecret(name, value);
    return secret ? `${separator}${name}=${REDACTED}` : match;
  },
);

// mailto:a@b.c, and package specs: alias@npm:pkg@1.2.3, github:user/repo, workspace:...
const NOT_USERS = new Set([
  "mailto",
  "npm",
  "github",
  "gitlab",
  "bitbucket",
  "git",
  "file",
  "link",
  "workspace",
  "patch",
  "portal",
  "jsr",
  "catalog",
]);

// user:password@host with no scheme (connection strings in messages); the host must look like
// one, so image:tag@sha256:... and scope/pkg@1.2.3 do not match.
export const USERINFO_WITHOUT_SCHEME = regexRule(
  "userinfo-password",
  ["@"],
  /(?<![A-Za-z0-9_.+/$-])([A-Za-z][A-Za-z0-9_.+-]{0,63}):([^\s@/:"'`]{3,128})@(?=(?:localhost|\d{1,3}(?:\.\d{1,3}){3}|(?:[A-Za-z0-9-]{1,63}\.){1,8}[A-Za-z][A-Za-z0-9-]{0,62})(?::\d{1,5})?(?:[/\s"'`,;)]|$))/g,
  (match, user = "", password = "") =>
    NOT_USERS.has(user.toLowerCase()) ||
    TOKEN_USER_PASSWORDS.has(password.toLowerCase()) ||
    isNotSecretValue(password)
      ? match
      : `${user}:${REDACTED}@`,
  { gate: String.raw`:[^\s@/:"'\x60]{3,128}@` },
);
