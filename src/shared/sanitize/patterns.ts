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
  "true",
  "false",
  "null",
  "nil",
  "none",
  "undefined",
  "yes",
  "no",
  "on",
  "off",
  "!0",
  "!1",
  "enabled",
  "disabled",
  "required",
  "optional",
  "missing",
  "invalid",
  "expired",
  "empty",
  "redacted",
  "hidden",
  "masked",
  "inherit",
  "include",
  "omit",
  "same-origin",
  "ok",
  "success",
  "failed",
  "failure",
  "denied",
  "granted",
  "valid",
  "pending",
  "skipped",
  "unset",
  "header",
  "headers",
  // type names, as TypeScript, Python and friends print them in code frames
  "string",
  "number",
  "boolean",
  "bigint",
  "symbol",
  "object",
  "any",
  "unknown",
  "never",
  "void",
  "str",
  "int",
  "float",
  "bool",
  "bytes",
  "dict",
  "list",
  // keywords that start an expression rather than a literal
  "await",
  "new",
  "typeof",
  "keyof",
  "unique",
  "readonly",
  "function",
  "async",
  "this",
  "require",
  "import",
  "return",
  "yield",
  // authorization schemes (the credential is the next word)
  "bearer",
  "basic",
  "token",
  "digest",
]);

// A reference to a value, not the value: $VAR ${VAR} $(cmd) %VAR% {{ x }} <token> env.X ...
const REFERENCE =
  /^(?:\$[{(A-Za-z_]|%[A-Za-z_][A-Za-z0-9_]*%|\{|<|(?:process\.env|import\.meta\.env|os\.environ|env|secrets|vars|inputs|github|config|settings|options|opts|props|ctx|context|req|request|args|self|this)[.[])/;
// The name of another variable (`KV_REST_API_TOKEN`) or a placeholder (`YOUR_API_KEY`).
const ENV_NAME = /^[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+$/;
// A mask someone else already applied: ***, xxxx, ••••, ----.
const MASK = /^[*xX•·#_-]{3,}$/;
// npm/PyPI version ranges: ^1.2.3, ~1.2, >=2.0.0-beta.1, 1.x
const VERSION = /^[\^~<>=]{0,2}v?\d{1,9}(?:\.(?:\d{1,9}|[x*])){1,3}(?:[-+][0-9A-Za-z.-]{1,64})?$/;
// An absolute or relative path of at least two segments (GOOGLE_APPLICATION_CREDENTIALS=/x/y.json).
const PATH = /^(?:~|\.{1,2})?(?:\/[\w.@+-]+){2,}\/?$|^\.{1,2}\/[\w.@+/-]+$/;
const ALNUM = /[A-Za-z0-9]/;

function isNotSecretValue(value: string): boolean {
  if (!ALNUM.test(value)) return true;
  // Already redacted, or a template whose secret part is interpolated: `Bearer ${token}`.
  if (value.includes(REDACTED) || value.includes("${") || value.includes("{{")) return true;
  if (value.length <= 24 && NOT_SECRET_WORDS.has(value.toLowerCase())) return true;
  return (
    REFERENCE.test(value) ||
    ENV_NAME.test(value) ||
    MASK.test(value) ||
    VERSION.test(value) ||
    PATH.test(value)
  );
}

// Generated credentials are long and mix letters with digits, or are long enough without.
const RANDOM_LOOKING = /^(?=[^\s]{16,}$)(?=.*\d)(?=.*[A-Za-z])|^[A-Za-z0-9+/=_.-]{32,}$/;

// ---------------------------------------------------------------------------------------------
// Which names label a secret. A name is split into word parts (GITHUB_TOKEN, apiKey,
// _authToken, aws.secret-access_key). Its last secret part decides, and only a few words may
// follow it (DB_PASSWORD_PROD, SECRET_KEY_BASE) — TOKEN_URL, PASSWORD_FILE, SECRET_NAME,
// max_tokens, openTokenDepth are metadata about a secret, not the secret.

const SECRET_PARTS = new Set([
  "secret",
  "token",
  "password",
  "passwd",
  "pwd",
  "pass",
  "passphrase",
  "credential",
  "credentials",
  "creds",
  "auth",
  "authorization",
  "pat",
  "apikey",
  "authtoken",
  "accesstoken",
  "refreshtoken",
  "idtoken",
  "sessiontoken",
  "clientsecret",
  "privatekey",
  "secretkey",
  "accesskey",
  "signingkey",
  "encryptionkey",
  "masterkey",
  "authkey",
  "appkey",
  "servicekey",
  "accountkey",
  "sharedaccesskey",
  "licensekey",
  // keytool / openssl spellings
  "storepass",
  "keypass",
  "srcstorepass",
  "deststorepass",
  "passin",
  "passout",
]);
// PGPASSWORD, DBPASS WORD-less concatenations: the part ends with the secret word.
const SECRET_SUFFIXES = ["password", "passwd", "passphrase", "secret", "token", "apikey", "pwd"];
// Words that make FOO_KEY a credential for sure. Any other FOO_KEY (STRIPE_KEY, but also
// STORAGE_KEY = "app-settings") is redacted only when its value looks generated.
const SECRET_KEY_QUALIFIERS = new Set([
  "api",
  "secret",
  "private",
  "access",
  "signing",
  "sign",
  "encryption",
  "encrypt",
  "decryption",
  "master",
  "hmac",
  "jwt",
  "auth",
  "webhook",
  "crypto",
  "cipher",
  "aes",
]);
// ...and words that make it an identifier or public.
const NON_SECRET_KEY_QUALIFIERS = new Set([
  "public",
  "pub",
  "cache",
  "sort",
  "partition",
  "primary",
  "foreign",
  "object",
  "idempotency",
  "dedup",
  "dedupe",
  "routing",
  "hash",
  "range",
  "lookup",
  "translation",
  "i18n",
  "react",
  "row",
  "unique",
  "index",
  "item",
  "group",
  "composite",
  "hot",
  "tree",
  "bucket",
  "shortcut",
  "sequence",
  "schema",
  "natural",
  "surrogate",
  "candidate",
  "compound",
  "cluster",
  "shard",
  "table",
  "column",
  "field",
  "json",
  "dict",
  "map",
  "lock",
  "queue",
  "restore",
  "node",
  "max",
  "min",
  "last",
  "first",
  "next",
  "prev",
  "sort",
  "foreign",
]);
// What may follow the secret word: variants, environments, encodings.
const TRAILING_PARTS = new Set([
  "base",
  "value",
  "val",
  "hash",
  "salt",
  "b64",
  "base64",
  "encoded",
  "enc",
  "encrypted",
  "raw",
  "plain",
  "plaintext",
  "json",
  "pem",
  "der",
  "hex",
  "string",
  "str",
  "data",
  "content",
  "text",
  "prod",
  "production",
  "dev",
  "development",
  "staging",
  "stage",
  "test",
  "testing",
  "live",
  "local",
  "ci",
  "ro",
  "rw",
  "readonly",
  "read",
  "write",
  "admin",
  "new",
  "old",
  "current",
  "next",
  "prev",
  "previous",
  "primary",
  "secondary",
  "backup",
  "default",
  "override",
]);
const NUMBERED = /^v?\d{1,3}$/;
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

const NOT_A_SECRET = 0;
const MAYBE_A_SECRET = 1; // FOO_KEY: redact a generated-looking value only
const A_SECRET = 2;
type NameStrength = typeof NOT_A_SECRET | typeof MAYBE_A_SECRET | typeof A_SECRET;

function partStrength(parts: readonly string[], i: number): NameStrength {
  const part = parts[i] ?? "";
  if (part === "key") {
    const qualifier = parts[i - 1];
    if (qualifier === undefined || NON_SECRET_KEY_QUALIFIERS.has(qualifier)) return NOT_A_SECRET;
    return SECRET_KEY_QUALIFIERS.has(qualifier) ? A_SECRET : MAYBE_A_SECRET;
  }
  const secret = SECRET_PARTS.has(part) || SECRET_SUFFIXES.some((suffix) => part.endsWith(suffix));
  return secret ? A_SECRET : NOT_A_SECRET;
}

function nameStrength(name: string): NameStrength {
  if (FILE_NAME.test(name)) return NOT_A_SECRET;
  const parts = nameParts(name);
  // Authorization headers have a rule of their own that keeps the scheme; --no-password is a switch.
  if (parts[parts.length - 1] === "authorization" || parts[0] === "no") return NOT_A_SECRET;
  for (let i = parts.length - 1; i >= 0; i--) {
    const strength = partStrength(parts, i);
    if (strength !== NOT_A_SECRET) return strength;
    const part = parts[i] ?? "";
    if (!TRAILING_PARTS.has(part) && !NUMBERED.test(part)) return NOT_A_SECRET;
  }
  return NOT_A_SECRET;
}

/** Whether `value`, labelled by `name`, is to be redacted (the value checks come first). */
function isLabelledSecret(name: string, value: string): boolean {
  if (isNotSecretValue(value)) return false;
  const strength = nameStrength(name);
  return strength === A_SECRET || (strength === MAYBE_A_SECRET && RANDOM_LOOKING.test(value));
}

// A code identifier or member expression: `getToken`, `config.apiKey`, `userPassword`.
const IDENTIFIER = /^[A-Za-z_$][\w$]*(?:\.[A-Za-z_$][\w$]*)*$/;
// A type name of two or more words: `PropertyKey`, `TokenResource` (a lone `Welcome` may be a password).
const TYPE_NAME = /^[A-Z][a-z]+(?:[A-Z][a-z0-9]+)+$/;
const SMALL_NUMBER = /^-?\d{1,5}$/;
const DIGIT = /\d/;

/**
 * Decides whether an unquoted value after a secret name is code rather than a literal:
 * `token = getToken()`, `password: string;`, `apiKey = config.apiKey`, `token: Key)`,
 * `secret = value`, `depth: 0`. Only for a separator written with spaces, as code is;
 * `NAME=value` is redacted unless it is a call.
 */
function looksLikeCode(value: string, next: string, separator: string): boolean {
  if (next === "(" && IDENTIFIER.test(value)) return true;
  if (!/\s/.test(separator)) return false;
  if (SMALL_NUMBER.test(value)) return true;
  if (!IDENTIFIER.test(value)) return false;
  // A statement or argument end, a type, a member access, a type name.
  if (next !== "" || value.includes(".") || TYPE_NAME.test(value)) return true;
  // `secret = value` is code; `password: postgres` is YAML, and redacted.
  return separator.includes("=") && !DIGIT.test(value) && value.length <= 24;
}

// ---------------------------------------------------------------------------------------------
// Token formats with a recognizable prefix. Lengths are lenient lower bounds (formats grow);
// sources are the public rule sets of gitleaks (config/gitleaks.toml), secretlint
// (secretlint-rule-*) and trufflehog (pkg/detectors).

// Lowercase-and-hyphen bodies are names (sk-components-library), not keys: generated keys mix case.
const LOWER_KEBAB = /^[a-z0-9_-]*$/;
// Known infixes are stripped first: OpenRouter's sk-or-v1- keys are lowercase hex.
const KEY_INFIX = /^sk-(?:proj-|svcacct-|admin-|ant-(?:api|admin)\d\d-|or-v1-)?/;
const unlessKebab = (match: string): string => {
  const body = match.slice(KEY_INFIX.exec(match)?.[0].length ?? 0);
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
  token(
    "github-token",
    ["ghp_", "gho_", "ghu_", "ghs_", "ghr_"],
    /(?<![A-Za-z0-9_])gh[pousr]_[A-Za-z0-9]{30,}/g,
  ),
  token(
    "github-fine-grained-pat",
    ["github_pat_"],
    /(?<![A-Za-z0-9_])github_pat_[A-Za-z0-9_]{40,}/g,
  ),
  token(
    "gitlab-token",
    [
      "glpat-",
      "gldt-",
      "glft-",
      "glrt-",
      "glptt-",
      "gloas-",
      "glimt-",
      "glagent-",
      "glsoat-",
      "glffct-",
      "glcbt-",
      "glwt-",
      "gr1348941",
    ],
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
  token(
    "huggingface-token",
    ["hf_", "api_org_"],
    /(?<![A-Za-z0-9_])(?:hf|api_org)_[A-Za-z0-9]{30,}/g,
  ),
  token("groq-api-key", ["gsk_"], /(?<![A-Za-z0-9_])gsk_[A-Za-z0-9]{40,}/g),
  token("replicate-api-token", ["r8_"], /(?<![A-Za-z0-9_-])r8_[A-Za-z0-9_-]{30,}/g),
  token("xai-api-key", ["xai-"], /(?<![A-Za-z0-9_-])xai-[A-Za-z0-9_]{40,}/g),
  token("perplexity-api-key", ["pplx-"], /(?<![A-Za-z0-9_-])pplx-[A-Za-z0-9]{40,}/g),
  token(
    "sendgrid-api-key",
    ["sg."],
    /(?<![A-Za-z0-9_.-])SG\.[A-Za-z0-9_-]{16,}\.[A-Za-z0-9_-]{30,}/g,
  ),
  token(
    "sendinblue-api-key",
    ["xkeysib-"],
    /(?<![A-Za-z0-9_-])xkeysib-[a-f0-9]{64}-[A-Za-z0-9]{16}/g,
  ),
  token("twilio-api-key", ["sk"], /(?<![A-Za-z0-9])SK[0-9a-fA-F]{32}(?![A-Za-z0-9])/g),
  token("mailgun-api-key", ["key-"], /(?<![A-Za-z0-9_-])key-[0-9a-f]{32}(?![A-Za-z0-9])/g),
  token("mailchimp-api-key", ["-us"], /(?<![A-Za-z0-9])[0-9a-f]{32}-us\d{1,2}(?![A-Za-z0-9])/g),
  token(
    "shopify-token",
    ["shpat_", "shpca_", "shppa_", "shpss_", "shptka_"],
    /(?<![A-Za-z0-9_])shp(?:at|ca|pa|ss|tka)_[a-fA-F0-9]{32,}/g,
  ),
  token("digitalocean-token", ["_v1_"], /(?<![A-Za-z0-9_])do[opr]_v1_[a-f0-9]{64}/g),
  token(
    "supabase-token",
    ["sbp_", "sb_secret_"],
    /(?<![A-Za-z0-9_])(?:sbp_[A-Za-z0-9_]{40,}|sb_secret_[A-Za-z0-9_-]{20,})/g,
  ),
  token(
    "doppler-token",
    ["dp."],
    /(?<![A-Za-z0-9_.-])dp\.(?:pt|st|sa|ct|scim|audit)\.[A-Za-z0-9]{40,}/g,
  ),
  token("pypi-token", ["pypi-age"], /(?<![A-Za-z0-9_-])pypi-AgE[A-Za-z0-9_-]{50,}/g),
  token("docker-token", ["dckr_"], /(?<![A-Za-z0-9_-])dckr_(?:pat|oat)_[A-Za-z0-9_-]{20,}/g),
  token("linear-api-key", ["lin_"], /(?<![A-Za-z0-9_])lin_(?:api|oauth)_[A-Za-z0-9]{32,}/g),
  token("postman-api-key", ["pmak-"], /(?<![A-Za-z0-9_-])PMAK-[A-Za-z0-9]{20,}-[A-Za-z0-9]{20,}/g),
  token("databricks-token", ["dapi"], /(?<![A-Za-z0-9])dapi[a-f0-9]{32}(?:-\d)?(?![A-Za-z0-9])/g),
  token("age-secret-key", ["age-secret-key-"], /AGE-SECRET-KEY-1[0-9A-Z]{50,}/g),
  // secretlint-rule-vercel: vcp_ vci_ vca_ vcr_ vck_
  token(
    "vercel-token",
    ["vcp_", "vci_", "vca_", "vcr_", "vck_"],
    /(?<![A-Za-z0-9_])vc[pikar]_[A-Za-z0-9]{20,}/g,
  ),
  token("netlify-token", ["nfp_"], /(?<![A-Za-z0-9_])nfp_[A-Za-z0-9_]{36,}/g),
  token("heroku-api-key", ["hrku-"], /(?<![A-Za-z0-9_-])HRKU-[A-Za-z0-9_-]{30,}/g),
  token(
    "cloudflare-api-token",
    ["cfk_", "cfut_", "cfat_"],
    /(?<![A-Za-z0-9_])cf(?:k|ut|at)_[A-Za-z0-9]{40,}/g,
  ),
  token(
    "cloudflare-origin-ca-key",
    ["v1.0-"],
    /(?<![A-Za-z0-9_.-])v1\.0-[a-f0-9]{24}-[a-f0-9]{100,}/g,
  ),
  token(
    "sentry-token",
    ["sntrys_", "sntryu_"],
    /(?<![A-Za-z0-9_])sntry[su]_[A-Za-z0-9+/=_-]{40,}/g,
  ),
  token(
    "grafana-token",
    ["glsa_", "glc_"],
    /(?<![A-Za-z0-9_])(?:glsa_[A-Za-z0-9]{32}_[A-Fa-f0-9]{8}|glc_[A-Za-z0-9+/]{32,}={0,3})/g,
  ),
  token("grafana-api-key", ["eyjrijoi"], /(?<![A-Za-z0-9+/_-])eyJrIjoi[A-Za-z0-9+/]{50,}={0,3}/g),
  token("vault-token", ["hvs.", "hvb.", "hvr."], /(?<![A-Za-z0-9_.-])hv[sbr]\.[A-Za-z0-9_-]{24,}/g),
  token(
    "terraform-cloud-token",
    ["atlasv1"],
    /(?<![A-Za-z0-9])[A-Za-z0-9]{14}\.atlasv1\.[A-Za-z0-9_=-]{60,}/g,
  ),
  token("pulumi-token", ["pul-"], /(?<![A-Za-z0-9_-])pul-[a-f0-9]{40}/g),
  token("1password-token", ["ops_"], /(?<![A-Za-z0-9_])ops_eyJ[A-Za-z0-9+/=_-]{50,}/g),
  token(
    "atlassian-token",
    ["atatt3", "atbb"],
    /(?<![A-Za-z0-9_=-])(?:ATATT3|ATBB)[A-Za-z0-9_=-]{30,}/g,
  ),
  token(
    "notion-token",
    ["ntn_", "secret_"],
    /(?<![A-Za-z0-9_])(?:ntn_[A-Za-z0-9]{40,}|secret_[A-Za-z0-9]{43}(?![A-Za-z0-9]))/g,
  ),
  token("figma-token", ["figd_"], /(?<![A-Za-z0-9_-])figd_[A-Za-z0-9_-]{40,}/g),
  token("airtable-token", ["pat"], /(?<![A-Za-z0-9_])pat[A-Za-z0-9]{14}\.[a-f0-9]{64}/g),
  token(
    "square-token",
    ["sq0atp-", "sq0csp-"],
    /(?<![A-Za-z0-9_-])sq0(?:atp|csp)-[A-Za-z0-9_-]{22,}/g,
  ),
  token("facebook-token", ["eaa"], /(?<![A-Za-z0-9_])EAA[A-Z][A-Za-z0-9]{90,}/g),
  token("sonar-token", ["sqp_", "squ_", "sqa_"], /(?<![A-Za-z0-9_])sq[pua]_[a-f0-9]{40}/g),
  token("jfrog-token", ["akcp"], /(?<![A-Za-z0-9])AKCp[A-Za-z0-9]{60,}/g),
  token("rubygems-token", ["rubygems_"], /(?<![A-Za-z0-9_])rubygems_[a-f0-9]{48}/g),
  token("nuget-api-key", ["oy2"], /(?<![A-Za-z0-9])oy2[a-z0-9]{43}(?![A-Za-z0-9])/g),
  token("clojars-token", ["clojars_"], /(?<![A-Za-z0-9_])CLOJARS_[a-z0-9]{60}/g),
  token(
    "planetscale-token",
    ["pscale_"],
    /(?<![A-Za-z0-9_])pscale_(?:tkn|oauth|pw)_[A-Za-z0-9_=.-]{32,}/g,
  ),
  token("neon-api-key", ["napi_"], /(?<![A-Za-z0-9_])napi_[a-z0-9]{60,}/g),
  token("tailscale-key", ["tskey-"], /(?<![A-Za-z0-9_-])tskey-[a-z]{3,8}-[A-Za-z0-9-]{20,}/g),
  token(
    "new-relic-key",
    ["nrak-", "nrii-", "nraa-"],
    /(?<![A-Za-z0-9_-])NR(?:AK|II|AA)-[A-Za-z0-9]{20,}/g,
  ),
  token("contentful-token", ["cfpat-"], /(?<![A-Za-z0-9_-])CFPAT-[A-Za-z0-9_-]{40,}/g),
  token("buildkite-token", ["bkua_"], /(?<![A-Za-z0-9_])bkua_[a-f0-9]{40}/g),
  token("circleci-token", ["ccipat_"], /(?<![A-Za-z0-9_])CCIPAT_[A-Za-z0-9_]{30,}/g),
  token(
    "flyio-token",
    ["fo1_", "fm1", "fm2_"],
    /(?<![A-Za-z0-9_+/])(?:fo1_[A-Za-z0-9_-]{30,}|fm(?:1[ar]|2)_[A-Za-z0-9+/]{60,}={0,3})/g,
  ),
  token("render-api-key", ["rnd_"], /(?<![A-Za-z0-9_])rnd_[A-Za-z0-9]{30,}/g),
  token("dropbox-token", ["sl."], /(?<![A-Za-z0-9_.-])sl\.(?:u\.)?[A-Za-z0-9_-]{100,}/g),
  token(
    "mapbox-secret-token",
    ["sk.eyj"],
    /(?<![A-Za-z0-9_.-])sk\.eyJ[A-Za-z0-9_-]{20,}\.[A-Za-z0-9_-]{20,}/g,
  ),
  token(
    "telegram-bot-token",
    [":aa"],
    /(?<![0-9])[0-9]{8,10}:AA[A-Za-z0-9_-]{33}(?![A-Za-z0-9_-])/g,
  ),
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
  /-----BEGIN[ A-Z0-9_-]{0,64}PRIVATE KEY(?: BLOCK)?-----[\s\S]*?(?:-----END[ A-Z0-9_-]{0,64}PRIVATE KEY(?: BLOCK)?-----|$)/g,
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
  regex:
    /(?<![A-Za-z0-9+.-])([A-Za-z][A-Za-z0-9+.-]{0,30}:\/\/)([^\s/?#@:"'`<>\\]*):([^\s/?#"'`<>\\]+)@/g,
  replace: (match, scheme = "", user = "", password = "") =>
    isNotSecretValue(password) ? match : `${scheme}${user}:${REDACTED}@`,
};

const URL_TOKEN_USER: SecretPattern = {
  id: "url-token-user",
  keywords: ["://"],
  // https://<token>@github.com: a long user name with no password is a token.
  regex: /(?<![A-Za-z0-9+.-])([A-Za-z][A-Za-z0-9+.-]{0,30}:\/\/)([A-Za-z0-9_-]{20,})@/g,
  replace: (match, scheme = "", user = "") =>
    isNotSecretValue(user) ? match : `${scheme}${REDACTED}@`,
};

const AUTHORIZATION_SCHEMES =
  "bearer|basic|token|bot|digest|negotiate|ntlm|apikey|api-key|sso-key|dpop|hoba|mutual|vapid|aws4-hmac-sha256|hmac-sha256|hmac|oauth|sharedkey|splunk|jwt|key|pat";
// Schemes whose credential is several comma-separated parameters, some quoted (Digest, SigV4).
const MULTI_PARAMETER_SCHEMES = "digest|aws4-hmac-sha256|hmac-sha256|hmac|oauth";

const AUTHORIZATION_HEADER: SecretPattern = {
  id: "authorization-header",
  keywords: ["authorization"],
  // The credential runs to the closing quote when quoted, to the end of the line for a
  // multi-parameter scheme, else it is one word. The scheme word stays.
  regex: new RegExp(
    String.raw`(?<![A-Za-z0-9_])((?:proxy-)?authorization)(\\?["'\x60]?[ \t]{0,8}[:=][ \t]{0,8})` +
      String.raw`(?:(\\?["'\x60])((?:${AUTHORIZATION_SCHEMES})[ \t]{1,8})?([^"'\x60\\]*)` +
      String.raw`|((?:${MULTI_PARAMETER_SCHEMES})[ \t]{1,8})([^]*)` +
      String.raw`|((?:${AUTHORIZATION_SCHEMES})[ \t]{1,8})?([^\s,;"'\x60\\]*))`,
    "gi",
  ),
  replace: (
    match,
    name = "",
    separator = "",
    quote = "",
    quotedScheme = "",
    quoted = "",
    multiScheme = "",
    multi = "",
    scheme = "",
    word = "",
  ) => {
    const value = quote !== "" ? quoted : multiScheme !== "" ? multi.trimEnd() : word;
    if (isNotSecretValue(value)) return match;
    const tail = multiScheme !== "" ? multi.slice(value.length) : "";
    return `${name}${separator}${quote}${quotedScheme || multiScheme || scheme}${REDACTED}${tail}`;
  },
};

const BEARER_TOKEN: SecretPattern = {
  id: "bearer-token",
  keywords: ["bearer"],
  // token68 syntax: '=' only as trailing padding, so "bearer expires_in=3600" is not a token.
  regex:
    /(?<![A-Za-z0-9_-])(bearer|Bearer|BEARER)([ \t]{1,8})([A-Za-z0-9._~+/-]{8,}=*)(?![A-Za-z0-9._~+/=-])/g,
  // Prose ("Bearer authentication") has no digits; a real token of 20+ characters nearly always does.
  replace: (match, word = "", space = "", value = "") =>
    isNotSecretValue(value) || (!DIGIT.test(value) && value.length < 20)
      ? match
      : `${word}${space}${REDACTED}`,
};

// RFC 6265 cookie names are tokens; `cookie: (c: Context) => string` is code, not a header.
const COOKIE_NAME = /^\s*[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;

const COOKIE_HEADER: SecretPattern = {
  id: "cookie-header",
  keywords: ["cookie"],
  regex: /(?<![A-Za-z0-9_.-])((?:set-)?cookie)([ \t]{0,8}:[ \t]{0,8})([^"'`\\]+)/gi,
  // Cookie: every pair's value; Set-Cookie: the first pair's (the rest are attributes).
  // split() rather than a regex over the pairs, which would rescan a long run without "=".
  replace: (_match, name = "", separator = "", value = "") => {
    const pairs = value.split(";");
    const count = name.toLowerCase() === "set-cookie" ? 1 : pairs.length;
    for (let i = 0; i < count; i++) {
      const pair = pairs[i] ?? "";
      const equals = pair.indexOf("=");
      if (equals < 0 || !COOKIE_NAME.test(pair.slice(0, equals))) continue;
      if (isNotSecretValue(pair.slice(equals + 1).trim())) continue;
      pairs[i] = pair.slice(0, equals + 1) + REDACTED;
    }
    return name + separator + pairs.join(";");
  },
};

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

const QUERY_PARAMETER: SecretPattern = {
  id: "query-parameter",
  keywords: ["sig", "token", "key", "secret", "pass", "pwd", "auth", "cred", "jwt", "pat"],
  regex: /([?&])([A-Za-z][A-Za-z0-9_.-]{0,63})=([^&#\s"'`<>\\)\],;]+)/g,
  replace: (match, separator = "", name = "", value = "") => {
    const secret = SIGNED_URL_PARAMETERS.has(name.toLowerCase())
      ? !isNotSecretValue(value)
      : isLabelledSecret(name, value);
    return secret ? `${separator}${name}=${REDACTED}` : match;
  },
};

const CURL_USER: SecretPattern = {
  id: "curl-user",
  keywords: ["curl"],
  regex: /(?<![A-Za-z0-9_-])(-u|--user)([ \t]{1,8}|=)(["']?)([^\s:"'`]{0,256}):([^\s"'`]+)/g,
  replace: (match, flag = "", separator = "", quote = "", user = "", password = "") =>
    isNotSecretValue(password) ? match : `${flag}${separator}${quote}${user}:${REDACTED}`,
};

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

const USERINFO_WITHOUT_SCHEME: SecretPattern = {
  id: "userinfo-password",
  keywords: ["@"],
  // user:password@host with no scheme (connection strings in messages); the host must look like
  // one, so image:tag@sha256:... and scope/pkg@1.2.3 do not match.
  regex:
    /(?<![A-Za-z0-9_.+/-])([A-Za-z][A-Za-z0-9_.+-]{0,63}):([^\s@/:"'`]{3,128})@(?=(?:localhost|\d{1,3}(?:\.\d{1,3}){3}|(?:[A-Za-z0-9-]{1,63}\.){1,8}[A-Za-z][A-Za-z0-9-]{0,62})(?::\d{1,5})?(?:[/\s"'`,;)]|$))/g,
  replace: (match, user = "", password = "") =>
    NOT_USERS.has(user.toLowerCase()) || isNotSecretValue(password)
      ? match
      : `${user}:${REDACTED}@`,
};

// Short password flags that mean a password only for these tools: `docker login -p x`,
// `mysql -px` (attached; `mysql -p db` prompts), `redis-cli -a x`.
const REGISTRY_LOGIN_PASSWORD: SecretPattern = {
  id: "registry-login-password",
  keywords: [
    "docker login",
    "podman login",
    "buildah login",
    "helm registry login",
    "oras login",
    "skopeo login",
  ],
  regex: /(?<![A-Za-z0-9_-])(-p)([ \t]{1,8}|=)(["']?)([^\s"'`]+)/g,
  replace: (match, flag = "", separator = "", quote = "", value = "") =>
    isNotSecretValue(value) ? match : `${flag}${separator}${quote}${REDACTED}`,
};

const MYSQL_PASSWORD: SecretPattern = {
  id: "mysql-password",
  keywords: ["mysql", "mariadb"],
  regex: /(?<![A-Za-z0-9_-])(-p)([^\s"'`-][^\s"'`]*|["'][^"']*)/g,
  replace: (match, flag = "", value = "") => {
    const quote = /^["']/.test(value) ? value.charAt(0) : "";
    return isNotSecretValue(value.slice(quote.length)) ? match : `${flag}${quote}${REDACTED}`;
  },
};

const REDIS_CLI_PASSWORD: SecretPattern = {
  id: "redis-cli-password",
  keywords: ["redis-cli"],
  regex: /(?<![A-Za-z0-9_-])(-a|--pass)([ \t]{1,8})(["']?)([^\s"'`]+)/g,
  replace: (match, flag = "", space = "", quote = "", value = "") =>
    isNotSecretValue(value) ? match : `${flag}${space}${quote}${REDACTED}`,
};

const PACKAGE_MANAGER_CONFIG: SecretPattern = {
  id: "package-manager-config",
  keywords: ["config set"],
  // npm config set //registry.example.com/:_authToken abc, yarn config set npmAuthToken abc
  regex:
    /((?:npm|yarn|pnpm)[ \t]+config[ \t]+set[ \t]+(?:--[a-z-]{1,32}[ \t]+)?)([^\s=]{1,256})([ \t]+)(["']?)([^\s"']+)/g,
  replace: (match, command = "", name = "", space = "", quote = "", value = "") =>
    isLabelledSecret(name, value) ? `${command}${name}${space}${quote}${REDACTED}` : match,
};

const NETRC_PASSWORD: SecretPattern = {
  id: "netrc-password",
  keywords: ["machine"],
  // .netrc: machine host login user password secret
  regex: /(?<![A-Za-z0-9_-])((?:password|passwd)[ \t]+)([^\s"']+)/g,
  replace: (match, label = "", value = "") => (isNotSecretValue(value) ? match : label + REDACTED),
};

const GITHUB_ADD_MASK: SecretPattern = {
  id: "github-add-mask",
  keywords: ["::add-mask::"],
  // A workflow command that registers a secret prints the secret itself.
  regex: /(::add-mask::)(.+)/g,
  replace: (match, command = "", value = "") => (value.trim() === "" ? match : command + REDACTED),
};

// Words that follow a flag in prose ("pass --token to the CLI") rather than a value.
const PROSE_AFTER_FLAG = new Set([
  "a",
  "an",
  "the",
  "to",
  "or",
  "and",
  "is",
  "as",
  "if",
  "in",
  "on",
  "at",
  "of",
  "by",
  "for",
  "from",
  "with",
  "via",
  "when",
  "was",
  "will",
  "must",
  "should",
  "can",
  "cannot",
  "not",
  "only",
  "instead",
  "flag",
  "option",
  "argument",
  "parameter",
]);

const CLI_FLAG: SecretPattern = {
  id: "cli-flag",
  keywords: ["secret", "token", "pass", "pwd", "key", "auth", "cred", "pat"],
  // --password x, --api-key "x", -storepass x. The = form is the labelled-value rule's.
  regex:
    /(?<![A-Za-z0-9_-])(--?[A-Za-z][A-Za-z0-9_-]{0,64})([ \t]{1,8})(?:"([^"]*)|'([^']*)|([^\s"'`-][^\s"'`]*))/g,
  replace: (match, flag = "", space = "", doubleQuoted = "", singleQuoted = "", bare = "") => {
    const value = doubleQuoted || singleQuoted || bare;
    if (!isLabelledSecret(flag, value) || PROSE_AFTER_FLAG.has(value.toLowerCase())) return match;
    // docker buildx --secret id=npmrc,src=.npmrc names a secret, it is not one.
    if (/^(?:id|type|src|source|env)=/.test(value)) return match;
    const quote = doubleQuoted ? '"' : singleQuoted ? "'" : "";
    return `${flag}${space}${quote}${REDACTED}`;
  },
};

// Labelled values: NAME=value, NAME: value, "name": "value", export NAME="value", name => 'x',
// npm's //host/:_authToken=value, and JSON-escaped \"name\":\"value\". The name regex only has
// to find a secret word; nameStrength decides.
const LABEL_NAME = String.raw`[A-Za-z0-9_.\-]{0,64}?(?:secret|token|pass|pwd|key|auth|cred|pat)[A-Za-z0-9_.\-]{0,64}`;
const LABEL_SEPARATOR = String.raw`\\?["'\x60]?[ \t]{0,8}(?::=|=>|\?=|=(?!=)|:(?!:))[ \t]{0,8}`;
const LABEL_VALUE = String.raw`(?:\\"([^"]*)|"([^"]*)|'([^']*)|\x60([^\x60]*)|([^\s"'\x60,;&|()<>\[\]}\\]+)([;,()<\[|]?))`;

const CONCATENATION = /^\s*\+|\+\s*$/;

const LABELLED_VALUE: SecretPattern = {
  id: "labelled-value",
  keywords: ["secret", "token", "pass", "pwd", "key", "auth", "cred", "pat"],
  regex: new RegExp(
    String.raw`(?<![A-Za-z0-9_.\-])(${LABEL_NAME})(${LABEL_SEPARATOR})${LABEL_VALUE}`,
    "gi",
  ),
  replace: (
    match,
    name = "",
    separator = "",
    escaped = "",
    double = "",
    single = "",
    backtick = "",
    bare = "",
    next = "",
  ) => {
    if (bare !== "") {
      // name:value with neither quotes nor spaces is a prefix (turbo's auth:build:, gradle's
      // :auth:compileJava, image:tag), not a label.
      if (separator === ":") return match;
      if (!isLabelledSecret(name, bare) || looksLikeCode(bare, next, separator)) return match;
      // PWD is the shell's working directory; "pass: 3" is a test count.
      const parts = nameParts(name);
      if (parts.length === 1 && (parts[0] === "pwd" || parts[0] === "oldpwd") && /^[/~]/.test(bare))
        return match;
      if (parts.length === 1 && parts[0] === "pass" && /\s/.test(separator)) return match;
      return `${name}${separator}${REDACTED}${next}`;
    }
    // An escaped string \"value\" ends with the backslash of its closing quote.
    const value = escaped !== "" ? escaped.replace(/\\$/, "") : double || single || backtick;
    // 'Credential=' + this.accessKeyId + '/': the "value" is code between two string literals.
    if (CONCATENATION.test(value) || !isLabelledSecret(name, value)) return match;
    const open = escaped !== "" ? '\\"' : double !== "" ? '"' : single !== "" ? "'" : "`";
    return `${name}${separator}${open}${REDACTED}${escaped.endsWith("\\") ? "\\" : ""}`;
  },
};

const XML_ELEMENT: SecretPattern = {
  id: "xml-element",
  keywords: ["secret", "token", "pass", "pwd", "key", "auth", "cred", "pat"],
  // <password>x</password> as Maven settings.xml and NuGet.config print it.
  regex: /(<([A-Za-z_][A-Za-z0-9_.:-]{0,64})>)([^<]+)(?=<\/)/g,
  replace: (match, open = "", name = "", value = "") =>
    isLabelledSecret(name, value.trim()) ? open + REDACTED : match,
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
  USERINFO_WITHOUT_SCHEME,
  CURL_USER,
  REGISTRY_LOGIN_PASSWORD,
  MYSQL_PASSWORD,
  REDIS_CLI_PASSWORD,
  PACKAGE_MANAGER_CONFIG,
  NETRC_PASSWORD,
  GITHUB_ADD_MASK,
  CLI_FLAG,
  XML_ELEMENT,
  LABELLED_VALUE,
];

/** Applies every rule in SECRET_PATTERNS, in order, to one line (no \n or \r). */
// The keyword prefilter, built once. One scan of the lowercased line finds every keyword in it:
// a zero-width lookahead tries all keywords at each position (V8 compiles the alternation into
// one pass with a first-character check), longest first, and a found keyword also counts for
// the keywords it contains ("apikey" means "key" is there too). This replaces ~90 includes()
// calls per line, which were most of the cost of ordinary build output.
const KEYWORDS = [...new Set(SECRET_PATTERNS.flatMap((rule) => rule.keywords))].sort(
  (a, b) => b.length - a.length,
);
const KEYWORD_SCAN = new RegExp(
  `(?=(${KEYWORDS.map((keyword) => keyword.replace(/[.*+?^${}()|[\]\\/-]/g, "\\$&")).join("|")}))`,
  "g",
);
const KEYWORDS_INSIDE = new Map(
  KEYWORDS.map((keyword) => [keyword, KEYWORDS.filter((other) => keyword.includes(other))]),
);

function keywordsIn(lower: string): Set<string> {
  const found = new Set<string>();
  for (const match of lower.matchAll(KEYWORD_SCAN)) {
    const keyword = match[1];
    if (keyword === undefined || found.has(keyword)) continue;
    for (const inside of KEYWORDS_INSIDE.get(keyword) ?? [keyword]) found.add(inside);
  }
  return found;
}

export function redactSecretPatterns(line: string): string {
  const found = keywordsIn(line.toLowerCase());
  if (found.size === 0) return line;
  let text = line;
  for (const rule of SECRET_PATTERNS) {
    if (!rule.keywords.some((keyword) => found.has(keyword))) continue;
    text = text.replace(rule.regex, (...args: unknown[]) => {
      // replace() passes (match, ...groups, offset, input); unmatched groups are undefined.
      const groups = args.slice(1, -2).map((group) => (typeof group === "string" ? group : ""));
      return rule.replace(String(args[0]), ...groups);
    });
  }
  return text;
}
