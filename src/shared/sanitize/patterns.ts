import { REDACTED } from "./redacted.ts";

/**
 * One pattern-based redaction rule. `keywords` are lowercase; the rule runs only when the
 * lowercased line contains one of them (the gitleaks prefilter). `regex` has the g flag and
 * `replace` returns the replacement for one match, given the match and its capture groups
 * (an unmatched group arrives as "").
 */
export interface SecretPattern {
  readonly id: string;
  readonly keywords: readonly string[];
  readonly regex: RegExp;
  readonly replace: (match: string, ...groups: string[]) => string;
}

// Every regex here must run in time linear in the line, whatever the line holds. The rules:
// - a rule starts on a literal prefix, and a lookbehind forbids starting inside a run of the
//   characters its body consumes, so two attempts never rescan the same run;
// - an unbounded run is followed by nothing that can fail (or only by bounded backtracking);
// - everything else that can be retried (names, user names) is bounded.
// test/shared/secret-patterns.test.ts runs hostile megabyte lines through every rule.

const whole = (): string => REDACTED;

/** A rule whose every match is a credential and is replaced whole. */
function token(id: string, keywords: readonly string[], regex: RegExp): SecretPattern {
  return { id, keywords, regex, replace: whole };
}

// ---------------------------------------------------------------------------------------------
// Values that are clearly not secrets. Used by the label-based rules only: a token format that
// matched is redacted whatever it looks like.

const NOT_SECRET_WORDS = new Set([
  "true", "false", "null", "nil", "none", "undefined", "yes", "no", "on", "off",
  "enabled", "disabled", "required", "optional", "missing", "invalid", "expired", "empty",
  "redacted", "hidden", "masked", "inherit", "include", "omit", "same-origin",
  // type names, as TypeScript, Python and friends print them in code frames
  "string", "number", "boolean", "bigint", "symbol", "object", "any", "unknown", "never", "void",
  "str", "int", "float", "bool", "bytes", "dict", "list", "optional",
  // keywords that start an expression rather than a literal
  "await", "new", "typeof", "function", "async", "this", "require", "import", "return", "yield",
  // authorization schemes (the credential is the next word)
  "bearer", "basic", "token", "digest",
]);

// A reference to a value, not the value: $VAR ${VAR} $(cmd) %VAR% {{ x }} <token> env.X ...
const REFERENCE =
  /^(?:\$[{(A-Za-z_]|%[A-Za-z_][A-Za-z0-9_]*%|\{|<|(?:process\.env|import\.meta\.env|os\.environ|env|secrets|vars|inputs|github|config|settings|options|opts|props|ctx|context|req|request|args|self|this)[.[])/;
// A mask someone else already applied: ***, xxxx, ••••, ----.
const MASK = /^[*xX•·#_-]+$/;
// npm/PyPI version ranges: ^1.2.3, ~1.2, >=2.0.0-beta.1, 1.x
const VERSION = /^[\^~<>=]{0,2}v?\d{1,9}(?:\.(?:\d{1,9}|[x*])){1,3}(?:[-+][0-9A-Za-z.-]{1,64})?$/;
// An absolute or relative path of at least two segments (GOOGLE_APPLICATION_CREDENTIALS=/x/y.json).
const PATH = /^(?:~|\.{1,2})?(?:\/[\w.@+-]+){2,}\/?$|^\.{1,2}\/[\w.@+/-]+$/;
const ALNUM = /[A-Za-z0-9]/;

function isNotSecretValue(value: string): boolean {
  if (!ALNUM.test(value)) return true;
  if (value.includes(REDACTED)) return true;
  if (value.length <= 24 && NOT_SECRET_WORDS.has(value.toLowerCase())) return true;
  return REFERENCE.test(value) || MASK.test(value) || VERSION.test(value) || PATH.test(value);
}

// ---------------------------------------------------------------------------------------------
// Which names label a secret. A name is split into word parts (GITHUB_TOKEN, apiKey,
// _authToken, aws.secret-access_key); it is a secret when a part says so.

const SECRET_PARTS = new Set([
  "secret", "token", "password", "passwd", "pwd", "pass", "passphrase", "credential",
  "credentials", "creds", "auth", "authorization", "pat", "apikey", "authtoken", "accesstoken",
  "refreshtoken", "idtoken", "sessiontoken", "clientsecret", "privatekey", "secretkey",
  "accesskey", "signingkey", "encryptionkey", "masterkey", "authkey", "appkey", "servicekey",
  "accountkey", "sharedaccesskey", "licensekey",
  // keytool / openssl spellings
  "storepass", "keypass", "srcstorepass", "deststorepass", "passin", "passout",
]);
// PGPASSWORD, DBPASS WORD-less concatenations: the part ends with the secret word.
const SECRET_SUFFIXES = ["password", "passwd", "passphrase", "secret", "token", "apikey", "pwd"];
// FOO_KEY is a secret unless FOO says the key is an identifier or public.
const NON_SECRET_KEY_QUALIFIERS = new Set([
  "public", "pub", "cache", "sort", "partition", "primary", "foreign", "object", "idempotency",
  "dedup", "dedupe", "routing", "hash", "range", "lookup", "translation", "i18n", "react", "row",
  "unique", "index", "item", "group", "composite", "hot", "tree", "bucket", "shortcut",
  "sequence", "schema", "natural", "surrogate", "candidate", "compound", "cluster", "shard",
  "table", "column", "field", "json", "dict", "map", "lock", "queue", "restore", "node",
]);
// TOKEN_URL, PASSWORD_FILE, SECRET_NAME, TOKEN_LIMIT: metadata about a secret, not the secret.
const NON_SECRET_LAST_PARTS = new Set([
  "url", "uri", "urls", "endpoint", "endpoints", "host", "hostname", "domain", "port", "path",
  "paths", "file", "filename", "files", "dir", "directory", "folder", "name", "names", "id",
  "ids", "type", "types", "mode", "method", "methods", "length", "len", "size", "count", "limit",
  "limits", "max", "min", "expiry", "expires", "expiration", "expire", "expired", "ttl",
  "timeout", "lifetime", "age", "header", "headers", "prefix", "suffix", "enabled", "enable",
  "disabled", "disable", "required", "provider", "providers", "strategy", "version", "format",
  "env", "var", "vars", "field", "fields", "param", "params", "hint", "label", "policy",
  "rotation", "location", "region", "scope", "scopes", "audience", "issuer", "algorithm", "alg",
  "kind", "status", "stdin", "exists", "source", "manager", "usage", "pattern", "regex", "error",
  "errors", "message", "placeholder", "interval", "delay", "helper", "command", "cmd",
]);
// A file name is not a label: `src/auth.ts:12:5`, `credentials.json: 2 kB`.
const FILE_NAME =
  /\.(?:[cm]?[jt]sx?|json|py|go|rs|rb|java|kt|php|vue|svelte|astro|css|scss|html|mdx?|ya?ml|toml|lock|txt|sh|map|log)$/i;

function nameParts(name: string): string[] {
  return name
    .replace(/([a-z0-9])([A-Z])/g, "$1 $2")
    .replace(/([A-Z])([A-Z][a-z])/g, "$1 $2")
    .toLowerCase()
    .split(/[^a-z0-9]+/)
    .filter((part) => part !== "");
}

function isSecretPart(part: string): boolean {
  return SECRET_PARTS.has(part) || SECRET_SUFFIXES.some((suffix) => part.endsWith(suffix));
}

function isSecretName(name: string): boolean {
  if (FILE_NAME.test(name)) return false;
  const parts = nameParts(name);
  const last = parts[parts.length - 1];
  if (last === undefined) return false;
  if (parts.length > 1 && NON_SECRET_LAST_PARTS.has(last)) return false;
  // Authorization and Cookie headers have rules of their own that keep the scheme.
  if (parts.join("-") === "authorization" || parts.join("-") === "proxy-authorization") return false;
  if (parts[0] === "no") return false; // --no-password
  return parts.some((part, i) => {
    if (part === "key") {
      const qualifier = parts[i - 1];
      return qualifier !== undefined && !NON_SECRET_KEY_QUALIFIERS.has(qualifier);
    }
    return isSecretPart(part);
  });
}

// A code identifier or member expression: `getToken`, `config.apiKey`, `userPassword`.
const IDENTIFIER = /^[A-Za-z_$][\w$]*(?:\.[A-Za-z_$][\w$]*)*$/;
const DIGIT = /\d/;

/**
 * Decides whether an unquoted value after a secret name is code rather than a literal:
 * `token = getToken()`, `password: string;`, `apiKey = config.apiKey`, `secret = value`.
 * Only for a separator written with spaces, as code is; `NAME=value` is always redacted.
 */
function looksLikeCode(value: string, next: string, spacedSeparator: boolean): boolean {
  if (!IDENTIFIER.test(value)) return false;
  if (next === "(") return true;
  if (!spacedSeparator) return false;
  if (next !== "") return true; // followed by ; < [ |: a statement end or a type
  return value.includes(".") || (!DIGIT.test(value) && value.length <= 24);
}

// ---------------------------------------------------------------------------------------------
// Token formats with a recognizable prefix. Lengths are lenient lower bounds (formats grow);
// sources are the public rule sets of gitleaks (config/gitleaks.toml), secretlint
// (secretlint-rule-*) and trufflehog (pkg/detectors).

// Lowercase-and-hyphen bodies are names (sk-components-library), not keys: generated keys mix case.
const LOWER_KEBAB = /^[a-z0-9_-]*$/;
const unlessKebab = (match: string): string => {
  const body = match.slice(match.indexOf("-") + 1);
  return LOWER_KEBAB.test(body) && /[-_]/.test(body) ? match : REDACTED;
};

const TOKEN_PATTERNS: readonly SecretPattern[] = [
  // OpenAI sk-/sk-proj-/sk-svcacct-, Anthropic sk-ant-api03-, OpenRouter sk-or-v1-, DeepSeek.
  {
    id: "openai-anthropic-api-key",
    keywords: ["sk-"],
    regex: /(?<![A-Za-z0-9_-])sk-[A-Za-z0-9_-]{20,}/g,
    replace: unlessKebab,
  },
  token("github-token", ["ghp_", "gho_", "ghu_", "ghs_", "ghr_"], /(?<![A-Za-z0-9_])gh[pousr]_[A-Za-z0-9]{30,}/g),
  token("github-fine-grained-pat", ["github_pat_"], /(?<![A-Za-z0-9_])github_pat_[A-Za-z0-9_]{40,}/g),
  token(
    "gitlab-token",
    ["glpat-", "gldt-", "glft-", "glrt-", "glptt-", "gloas-", "glimt-", "glagent-", "glsoat-", "glffct-", "glcbt-", "glwt-", "gr1348941"],
    /(?<![A-Za-z0-9_.-])(?:gl(?:pat|dt|ft|rt|ptt|oas|imt|agent|soat|ffct|cbt|wt)-|GR1348941)[A-Za-z0-9_.-]{20,}/g,
  ),
  token("npm-token", ["npm_"], /(?<![A-Za-z0-9_])npm_[A-Za-z0-9]{36,}/g),
  token("slack-token", ["xox"], /(?<![A-Za-z0-9_-])xox[abposre]-[A-Za-z0-9-]{10,}/g),
  token("slack-app-token", ["xapp-"], /(?<![A-Za-z0-9_-])xapp-\d-[A-Za-z0-9-]{10,}/g),
  token("google-api-key", ["aiza"], /(?<![A-Za-z0-9_-])AIza[A-Za-z0-9_-]{30,}/g),
  token("google-oauth-client-secret", ["gocspx-"], /(?<![A-Za-z0-9_-])GOCSPX-[A-Za-z0-9_-]{20,}/g),
  token("google-oauth-access-token", ["ya29."], /(?<![A-Za-z0-9_.-])ya29\.[A-Za-z0-9_.-]{20,}/g),
  token("google-oauth-refresh-token", ["1//0"], /(?<![A-Za-z0-9_/-])1\/\/0[A-Za-z0-9_-]{30,}/g),
  // Access key ids only: AGPA/AIDA/AROA... name IAM entities and are not credentials.
  token(
    "aws-access-key-id",
    ["akia", "asia", "abia", "acca", "a3t"],
    /(?<![A-Za-z0-9])(?:A3T[A-Z0-9]|AKIA|ASIA|ABIA|ACCA)[A-Z0-9]{16}(?![A-Za-z0-9])/g,
  ),
  // Stripe, and Clerk, which uses the same sk_live_/pk_test_ shapes.
  token(
    "stripe-key",
    ["_live_", "_test_", "_prod_"],
    /(?<![A-Za-z0-9_])(?:sk|pk|rk)_(?:live|test|prod)_[A-Za-z0-9]{10,}/g,
  ),
  token("stripe-webhook-secret", ["whsec_"], /(?<![A-Za-z0-9_])whsec_[A-Za-z0-9+/=]{20,}/g),
  token("huggingface-token", ["hf_", "api_org_"], /(?<![A-Za-z0-9_])(?:hf|api_org)_[A-Za-z0-9]{30,}/g),
  token("groq-api-key", ["gsk_"], /(?<![A-Za-z0-9_])gsk_[A-Za-z0-9]{40,}/g),
  token("replicate-api-token", ["r8_"], /(?<![A-Za-z0-9_-])r8_[A-Za-z0-9_-]{30,}/g),
  token("xai-api-key", ["xai-"], /(?<![A-Za-z0-9_-])xai-[A-Za-z0-9_]{40,}/g),
  token("perplexity-api-key", ["pplx-"], /(?<![A-Za-z0-9_-])pplx-[A-Za-z0-9]{40,}/g),
  token("sendgrid-api-key", ["sg."], /(?<![A-Za-z0-9_.-])SG\.[A-Za-z0-9_-]{16,}\.[A-Za-z0-9_-]{30,}/g),
  token("sendinblue-api-key", ["xkeysib-"], /(?<![A-Za-z0-9_-])xkeysib-[a-f0-9]{64}-[A-Za-z0-9]{16}/g),
  token("twilio-api-key", ["sk"], /(?<![A-Za-z0-9])SK[0-9a-fA-F]{32}(?![A-Za-z0-9])/g),
  token("mailgun-api-key", ["key-"], /(?<![A-Za-z0-9_-])key-[0-9a-f]{32}(?![A-Za-z0-9])/g),
  token("mailchimp-api-key", ["-us"], /(?<![A-Za-z0-9])[0-9a-f]{32}-us\d{1,2}(?![A-Za-z0-9])/g),
  token("shopify-token", ["shpat_", "shpca_", "shppa_", "shpss_", "shptka_"], /(?<![A-Za-z0-9_])shp(?:at|ca|pa|ss|tka)_[a-fA-F0-9]{32,}/g),
  token("digitalocean-token", ["_v1_"], /(?<![A-Za-z0-9_])do[opr]_v1_[a-f0-9]{64}/g),
  token("supabase-token", ["sbp_", "sb_secret_"], /(?<![A-Za-z0-9_])(?:sbp_[A-Za-z0-9_]{40,}|sb_secret_[A-Za-z0-9_-]{20,})/g),
  token("doppler-token", ["dp."], /(?<![A-Za-z0-9_.-])dp\.(?:pt|st|sa|ct|scim|audit)\.[A-Za-z0-9]{40,}/g),
  token("pypi-token", ["pypi-age"], /(?<![A-Za-z0-9_-])pypi-AgE[A-Za-z0-9_-]{50,}/g),
  token("docker-token", ["dckr_"], /(?<![A-Za-z0-9_-])dckr_(?:pat|oat)_[A-Za-z0-9_-]{20,}/g),
  token("linear-api-key", ["lin_"], /(?<![A-Za-z0-9_])lin_(?:api|oauth)_[A-Za-z0-9]{32,}/g),
  token("postman-api-key", ["pmak-"], /(?<![A-Za-z0-9_-])PMAK-[A-Za-z0-9]{20,}-[A-Za-z0-9]{20,}/g),
  token("databricks-token", ["dapi"], /(?<![A-Za-z0-9])dapi[a-f0-9]{32}(?:-\d)?(?![A-Za-z0-9])/g),
  token("age-secret-key", ["age-secret-key-"], /AGE-SECRET-KEY-1[0-9A-Z]{50,}/g),
  // secretlint-rule-vercel: vcp_ vci_ vca_ vcr_ vck_
  token("vercel-token", ["vcp_", "vci_", "vca_", "vcr_", "vck_"], /(?<![A-Za-z0-9_])vc[pikar]_[A-Za-z0-9]{20,}/g),
  token("netlify-token", ["nfp_"], /(?<![A-Za-z0-9_])nfp_[A-Za-z0-9_]{36,}/g),
  token("heroku-api-key", ["hrku-"], /(?<![A-Za-z0-9_-])HRKU-[A-Za-z0-9_-]{30,}/g),
  token("cloudflare-api-token", ["cfk_", "cfut_", "cfat_"], /(?<![A-Za-z0-9_])cf(?:k|ut|at)_[A-Za-z0-9]{40,}/g),
  token("cloudflare-origin-ca-key", ["v1.0-"], /(?<![A-Za-z0-9_.-])v1\.0-[a-f0-9]{24}-[a-f0-9]{100,}/g),
  token("sentry-token", ["sntrys_", "sntryu_"], /(?<![A-Za-z0-9_])sntry[su]_[A-Za-z0-9+/=_-]{40,}/g),
  token("grafana-token", ["glsa_", "glc_"], /(?<![A-Za-z0-9_])(?:glsa_[A-Za-z0-9]{32}_[A-Fa-f0-9]{8}|glc_[A-Za-z0-9+/]{32,}={0,3})/g),
  token("grafana-api-key", ["eyjrijoi"], /(?<![A-Za-z0-9+/_-])eyJrIjoi[A-Za-z0-9+/]{50,}={0,3}/g),
  token("vault-token", ["hvs.", "hvb.", "hvr."], /(?<![A-Za-z0-9_.-])hv[sbr]\.[A-Za-z0-9_-]{24,}/g),
  token("terraform-cloud-token", ["atlasv1"], /(?<![A-Za-z0-9])[A-Za-z0-9]{14}\.atlasv1\.[A-Za-z0-9_=-]{60,}/g),
  token("pulumi-token", ["pul-"], /(?<![A-Za-z0-9_-])pul-[a-f0-9]{40}/g),
  token("1password-token", ["ops_"], /(?<![A-Za-z0-9_])ops_eyJ[A-Za-z0-9+/=_-]{50,}/g),
  token("atlassian-token", ["atatt3", "atbb"], /(?<![A-Za-z0-9_=-])(?:ATATT3|ATBB)[A-Za-z0-9_=-]{30,}/g),
  token("notion-token", ["ntn_", "secret_"], /(?<![A-Za-z0-9_])(?:ntn_[A-Za-z0-9]{40,}|secret_[A-Za-z0-9]{43}(?![A-Za-z0-9]))/g),
  token("figma-token", ["figd_"], /(?<![A-Za-z0-9_-])figd_[A-Za-z0-9_-]{40,}/g),
  token("airtable-token", ["pat"], /(?<![A-Za-z0-9_])pat[A-Za-z0-9]{14}\.[a-f0-9]{64}/g),
  token("square-token", ["sq0atp-", "sq0csp-"], /(?<![A-Za-z0-9_-])sq0(?:atp|csp)-[A-Za-z0-9_-]{22,}/g),
  token("facebook-token", ["eaa"], /(?<![A-Za-z0-9_])EAA[A-Z][A-Za-z0-9]{90,}/g),
  token("sonar-token", ["sqp_", "squ_", "sqa_"], /(?<![A-Za-z0-9_])sq[pua]_[a-f0-9]{40}/g),
  token("jfrog-token", ["akcp"], /(?<![A-Za-z0-9])AKCp[A-Za-z0-9]{60,}/g),
  token("rubygems-token", ["rubygems_"], /(?<![A-Za-z0-9_])rubygems_[a-f0-9]{48}/g),
  token("nuget-api-key", ["oy2"], /(?<![A-Za-z0-9])oy2[a-z0-9]{43}(?![A-Za-z0-9])/g),
  token("clojars-token", ["clojars_"], /(?<![A-Za-z0-9_])CLOJARS_[a-z0-9]{60}/g),
  token("planetscale-token", ["pscale_"], /(?<![A-Za-z0-9_])pscale_(?:tkn|oauth|pw)_[A-Za-z0-9_=.-]{32,}/g),
  token("neon-api-key", ["napi_"], /(?<![A-Za-z0-9_])napi_[a-z0-9]{60,}/g),
  token("tailscale-key", ["tskey-"], /(?<![A-Za-z0-9_-])tskey-[a-z]{3,8}-[A-Za-z0-9-]{20,}/g),
  token("new-relic-key", ["nrak-", "nrii-", "nraa-"], /(?<![A-Za-z0-9_-])NR(?:AK|II|AA)-[A-Za-z0-9]{20,}/g),
  token("contentful-token", ["cfpat-"], /(?<![A-Za-z0-9_-])CFPAT-[A-Za-z0-9_-]{40,}/g),
  token("buildkite-token", ["bkua_"], /(?<![A-Za-z0-9_])bkua_[a-f0-9]{40}/g),
  token("circleci-token", ["ccipat_"], /(?<![A-Za-z0-9_])CCIPAT_[A-Za-z0-9_]{30,}/g),
  token("flyio-token", ["fo1_", "fm1", "fm2_"], /(?<![A-Za-z0-9_+/])(?:fo1_[A-Za-z0-9_-]{30,}|fm(?:1[ar]|2)_[A-Za-z0-9+/]{60,}={0,3})/g),
  token("render-api-key", ["rnd_"], /(?<![A-Za-z0-9_])rnd_[A-Za-z0-9]{30,}/g),
  token("dropbox-token", ["sl."], /(?<![A-Za-z0-9_.-])sl\.(?:u\.)?[A-Za-z0-9_-]{100,}/g),
  token("mapbox-secret-token", ["sk.eyj"], /(?<![A-Za-z0-9_.-])sk\.eyJ[A-Za-z0-9_-]{20,}\.[A-Za-z0-9_-]{20,}/g),
  token("telegram-bot-token", [":aa"], /(?<![0-9])[0-9]{8,10}:AA[A-Za-z0-9_-]{33}(?![A-Za-z0-9_-])/g),
  token(
    "discord-bot-token",
    ["."],
    /(?<![A-Za-z0-9_-])[MNO][A-Za-z0-9_-]{23,25}\.[A-Za-z0-9_-]{6}\.[A-Za-z0-9_-]{27,}/g,
  ),
  // gitleaks azure-ad-client-secret: three characters, a digit, then Q~.
  token(
    "azure-ad-client-secret",
    ["q~"],
    /(?<![A-Za-z0-9_~.-])[A-Za-z0-9_~.]{3}\dQ~[A-Za-z0-9_~.-]{31,34}(?![A-Za-z0-9_~.-])/g,
  ),
  {
    id: "azure-storage-key",
    keywords: ["accountkey", "sharedaccesskey"],
    regex: /(?<![A-Za-z0-9])(AccountKey|SharedAccessKey)=([A-Za-z0-9+/]{20,}={0,2})/gi,
    replace: (_match, name = "") => `${name}=${REDACTED}`,
  },
  // A JWT: header.payload[.signature], both JSON objects, so both start with eyJ.
  token(
    "jwt",
    ["eyj"],
    /(?<![A-Za-z0-9_-])eyJ[A-Za-z0-9_-]{10,}\.eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]*/g,
  ),
];

// ---------------------------------------------------------------------------------------------
// Structural rules: whole blocks, URLs, headers, parameters, flags and labelled values.

const PRIVATE_KEY: SecretPattern = token(
  "private-key",
  ["private key"],
  // To END when it is on the line, else to the end of the line (a JSON-escaped key has \n).
  /-----BEGIN[ A-Z0-9_-]{0,64}PRIVATE KEY(?: BLOCK)?-----[^]*?(?:-----END[ A-Z0-9_-]{0,64}PRIVATE KEY(?: BLOCK)?-----|$)/g,
);

const DATABASE_SCHEMES =
  "postgres(?:ql)?|redis|rediss|valkeys?|mongodb|mysqlx?|mariadb|mssql|sqlserver|cockroach(?:db)?|clickhouse|amqps?|couchdb|neo4j|bolt|oracle|cassandra|memcached|libsql|db2|snowflake|nats|kafka";

const DATABASE_URL: SecretPattern = token(
  "database-url",
  ["://"],
  // The whole URL: user, host and database name say too much next to a password.
  // `mongodb+srv`, `postgresql+asyncpg` (SQLAlchemy) and `jdbc:` prefixes included.
  new RegExp(
    String.raw`(?<![A-Za-z0-9+.-])(?:jdbc:)?(?:${DATABASE_SCHEMES})(?:\+[a-z0-9]+)?://[^\s/?#@:"'\x60<>\\]*:[^\s/?#"'\x60<>\\]+@[^\s"'\x60<>\\]*`,
    "gi",
  ),
);

// Slack/Discord/Teams webhook URLs are bearer credentials; the host stays so a reader knows what leaked.
const WEBHOOK_URL: SecretPattern = {
  id: "webhook-url",
  keywords: ["hooks.slack.com", "/api/webhooks/", "webhook.office.com"],
  regex:
    /(https?:\/\/(?:hooks\.slack\.com\/(?:services|workflows|triggers)\/|(?:ptb\.|canary\.)?discord(?:app)?\.com\/api\/(?:v\d{1,2}\/)?webhooks\/|[A-Za-z0-9-]{1,64}\.webhook\.office\.com\/webhookb2\/))[A-Za-z0-9_@/+.-]+/g,
  replace: (_match, prefix = "") => prefix + REDACTED,
};

const URL_PASSWORD: SecretPattern = {
  id: "url-password",
  keywords: ["://"],
  // scheme://user:password@host: keep scheme, user and host. The password may hold an @; the
  // last @ before the host is the separator.
  regex: /(?<![A-Za-z0-9+.-])([A-Za-z][A-Za-z0-9+.-]{0,30}:\/\/)([^\s/?#@:"'`<>\\]*):([^\s/?#"'`<>\\]+)@/g,
  replace: (match, scheme = "", user = "", password = "") =>
    isNotSecretValue(password) ? match : `${scheme}${user}:${REDACTED}@`,
};

const URL_TOKEN_USER: SecretPattern = {
  id: "url-token-user",
  keywords: ["://"],
  // https://<token>@github.com: a long user name with no password is a token.
  regex: /(?<![A-Za-z0-9+.-])([A-Za-z][A-Za-z0-9+.-]{0,30}:\/\/)([A-Za-z0-9_-]{20,})@/g,
  replace: (match, scheme = "", user = "") => (isNotSecretValue(user) ? match : `${scheme}${REDACTED}@`),
};

// Schemes whose credential is several comma-separated parameters (Digest, AWS SigV4).
const MULTI_PARAMETER_SCHEME = /^(?:digest|aws4-hmac-sha256|hmac|oauth|signature)/i;
const FIRST_WORD = /^[^\s,;]+/;

const AUTHORIZATION_HEADER: SecretPattern = {
  id: "authorization-header",
  keywords: ["authorization"],
  regex:
    /(?<![A-Za-z0-9_-])((?:proxy-)?authorization)(\\?["'`]?[ \t]{0,8}[:=][ \t]{0,8})(\\?["'`]?)((?:bearer|basic|token|bot|digest|negotiate|ntlm|apikey|api-key|sso-key|dpop|hoba|mutual|vapid|aws4-hmac-sha256|hmac-sha256|hmac|oauth|sharedkey|splunk|jwt|key|pat)[ \t]{1,8})?([^"'`\\]*)/gi,
  replace: (match, name = "", separator = "", quote = "", scheme = "", rest = "") => {
    const wholeRest = quote !== "" || MULTI_PARAMETER_SCHEME.test(scheme);
    const secret = wholeRest ? rest.trimEnd() : (FIRST_WORD.exec(rest)?.[0] ?? "");
    if (isNotSecretValue(secret)) return match;
    return `${name}${separator}${quote}${scheme}${REDACTED}${rest.slice(secret.length)}`;
  },
};

const BEARER_TOKEN: SecretPattern = {
  id: "bearer-token",
  keywords: ["bearer"],
  regex: /(?<![A-Za-z0-9_-])(bearer|Bearer|BEARER)([ \t]{1,8})([A-Za-z0-9._~+/=-]{8,})/g,
  // Prose ("Bearer authentication") has no digits; a real token of 20+ characters nearly always does.
  replace: (match, word = "", space = "", value = "") =>
    isNotSecretValue(value) || (!DIGIT.test(value) && value.length < 20) ? match : `${word}${space}${REDACTED}`,
};

const COOKIE_PAIR = /([^\s=;]+)=([^;]*)/g;

const COOKIE_HEADER: SecretPattern = {
  id: "cookie-header",
  keywords: ["cookie"],
  regex: /(?<![A-Za-z0-9_.-])((?:set-)?cookie)([ \t]{0,8}:[ \t]{0,8})([^"'`\\]+)/gi,
  // Cookie: every pair's value; Set-Cookie: the first pair's (the rest are attributes).
  replace: (_match, name = "", separator = "", value = "") => {
    let first = true;
    const redacted = value.replace(COOKIE_PAIR, (pair: string, key: string, cookie: string) => {
      if (!first && name.toLowerCase() === "set-cookie") return pair;
      first = false;
      return isNotSecretValue(cookie.trim()) ? pair : `${key}=${REDACTED}`;
    });
    return name + separator + redacted;
  },
};

const SIGNED_URL_PARAMETERS = new Set([
  "x-amz-signature", "x-amz-credential", "x-amz-security-token", "x-goog-signature",
  "x-goog-credential", "x-goog-security-token", "signature", "sig", "token", "access_token",
  "refresh_token", "id_token", "client_secret", "api_key", "apikey", "api-key", "key",
  "password", "secret", "auth", "jwt", "session_token", "private_token",
]);

const QUERY_PARAMETER: SecretPattern = {
  id: "query-parameter",
  keywords: ["sig", "token", "key", "secret", "pass", "pwd", "auth", "cred", "x-amz-", "x-goog-", "jwt", "pat"],
  regex: /([?&])([A-Za-z][A-Za-z0-9_.-]{0,63})=([^&#\s"'`<>\\)\],;]+)/g,
  replace: (match, separator = "", name = "", value = "") => {
    const secretName = SIGNED_URL_PARAMETERS.has(name.toLowerCase()) || isSecretName(name);
    return secretName && !isNotSecretValue(value) ? `${separator}${name}=${REDACTED}` : match;
  },
};

const CURL_USER: SecretPattern = {
  id: "curl-user",
  keywords: ["curl"],
  regex: /(?<![A-Za-z0-9_-])(-u|--user)([ \t]{1,8}|=)(["']?)([^\s:"'`]{0,256}):([^\s"'`]+)/g,
  replace: (match, flag = "", separator = "", quote = "", user = "", password = "") =>
    isNotSecretValue(password) ? match : `${flag}${separator}${quote}${user}:${REDACTED}`,
};

// Words that follow a flag in prose ("pass --token to the CLI") rather than a value.
const PROSE_AFTER_FLAG = new Set(["to", "or", "and", "the", "is", "as", "if", "for", "with", "when", "instead", "flag", "option"]);

const CLI_FLAG: SecretPattern = {
  id: "cli-flag",
  keywords: ["secret", "token", "pass", "pwd", "key", "auth", "cred"],
  // --password x, --api-key "x", -storepass x. The = form is the labelled-value rule's.
  regex: /(?<![A-Za-z0-9_-])(--?[A-Za-z][A-Za-z0-9_-]{0,64})([ \t]{1,8})(?:"([^"]*)|'([^']*)|([^\s"'`-][^\s"'`]*))/g,
  replace: (match, flag = "", space = "", doubleQuoted = "", singleQuoted = "", bare = "") => {
    if (!isSecretName(flag)) return match;
    const value = doubleQuoted || singleQuoted || bare;
    if (isNotSecretValue(value) || PROSE_AFTER_FLAG.has(value.toLowerCase())) return match;
    // docker buildx --secret id=npmrc,src=.npmrc names a secret, it is not one.
    if (/^(?:id|type|src|source|env)=/.test(value)) return match;
    const quote = doubleQuoted ? '"' : singleQuoted ? "'" : "";
    return `${flag}${space}${quote}${REDACTED}`;
  },
};

// Labelled values: NAME=value, NAME: value, "name": "value", export NAME="value", name => 'x',
// npm's //host/:_authToken=value, and JSON-escaped \"name\":\"value\". The name regex only has
// to find a secret word; isSecretName decides.
const LABEL_NAME = String.raw`[A-Za-z0-9_.\-]{0,64}?(?:secret|token|pass|pwd|key|auth|cred|pat)[A-Za-z0-9_.\-]{0,64}`;
const LABEL_SEPARATOR = String.raw`\\?["'\x60]?[ \t]{0,8}(?::=|=>|\?=|=(?!=)|:(?!:))[ \t]{0,8}`;
const LABEL_VALUE = String.raw`(?:\\"([^"]*)|"([^"]*)|'([^']*)|\x60([^\x60]*)|([^\s"'\x60,;&|()<>\[\]}\\]+)([;(<\[|]?))`;

const LABELLED_VALUE: SecretPattern = {
  id: "labelled-value",
  keywords: ["secret", "token", "pass", "pwd", "key", "auth", "cred", "pat"],
  regex: new RegExp(String.raw`(?<![A-Za-z0-9_.\-])(${LABEL_NAME})(${LABEL_SEPARATOR})${LABEL_VALUE}`, "gi"),
  replace: (match, name = "", separator = "", escaped = "", double = "", single = "", backtick = "", bare = "", next = "") => {
    if (!isSecretName(name)) return match;
    const parts = nameParts(name);
    const spaced = /\s/.test(separator);
    if (bare !== "") {
      if (isNotSecretValue(bare) || looksLikeCode(bare, next, spaced)) return match;
      // PWD is the shell's working directory; "pass: 3" is a test count.
      if ((parts[0] === "pwd" || parts[0] === "oldpwd") && parts.length === 1 && /^[/~]/.test(bare)) return match;
      if (parts.length === 1 && parts[0] === "pass" && spaced) return match;
      return `${name}${separator}${REDACTED}${next}`;
    }
    // An escaped string \"value\" ends with the backslash of its closing quote.
    const value = escaped !== "" ? escaped.replace(/\\$/, "") : double || single || backtick;
    if (isNotSecretValue(value)) return match;
    const open = escaped !== "" ? '\\"' : double !== "" ? '"' : single !== "" ? "'" : "`";
    return `${name}${separator}${open}${REDACTED}${escaped.endsWith("\\") ? "\\" : ""}`;
  },
};

const XML_ELEMENT: SecretPattern = {
  id: "xml-element",
  keywords: ["secret", "token", "pass", "pwd", "key", "auth", "cred"],
  // <password>x</password> as Maven settings.xml and NuGet.config print it.
  regex: /(<([A-Za-z_][A-Za-z0-9_.:-]{0,64})>)([^<]+)(?=<\/)/g,
  replace: (match, open = "", name = "", value = "") =>
    isSecretName(name) && !isNotSecretValue(value.trim()) ? open + REDACTED : match,
};

/**
 * The rules in the order they run. Whole-credential rules first (a database URL goes whole,
 * before the generic URL rule could keep its user and host); labelled values last, where an
 * earlier rule's [REDACTED] is recognised and left alone.
 */
export const SECRET_PATTERNS: readonly SecretPattern[] = [
  PRIVATE_KEY,
  DATABASE_URL,
  WEBHOOK_URL,
  URL_PASSWORD,
  URL_TOKEN_USER,
  AUTHORIZATION_HEADER,
  ...TOKEN_PATTERNS,
  BEARER_TOKEN,
  COOKIE_HEADER,
  QUERY_PARAMETER,
  CURL_USER,
  CLI_FLAG,
  XML_ELEMENT,
  LABELLED_VALUE,
];

/** Applies every rule in SECRET_PATTERNS, in order, to one line (no \n or \r). */
export function redactSecretPatterns(line: string): string {
  const lower = line.toLowerCase();
  const seen = new Map<string, boolean>();
  const contains = (keyword: string): boolean => {
    let found = seen.get(keyword);
    if (found === undefined) {
      found = lower.includes(keyword);
      seen.set(keyword, found);
    }
    return found;
  };
  let text = line;
  for (const rule of SECRET_PATTERNS) {
    if (!rule.keywords.some(contains)) continue;
    text = text.replace(rule.regex, (...args: unknown[]) => {
      // replace() passes (match, ...groups, offset, input); unmatched groups are undefined.
      const groups = args.slice(1, -2).map((group) => (typeof group === "string" ? group : ""));
      return rule.replace(String(args[0]), ...groups);
    });
  }
  return text;
}
