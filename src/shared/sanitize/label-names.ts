import { isNotSecretValue, looksGenerated } from "./value-shapes.ts";

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

export function nameParts(name: string): string[] {
  return name
    .replace(/([a-z0-9])([A-Z])/g, "$1 $2")
    .replace(/([A-Z])([A-Z][a-z])/g, "$1 $2")
    .toLowerCase()
    .split(/[^a-z0-9]+/)
    .filter((part) => part !== "");
}

/** The words a secret's name holds one of: the keywords of every rule that reads names. */
export const SECRET_NAME_WORDS = [
  "secret",
  "token",
  "pass",
  "pwd",
  "key",
  "auth",
  "cred",
  "pat",
  "login",
  "sid",
  "access",
] as const;

export const NOT_A_SECRET = 0;
export const MAYBE_A_SECRET = 1; // FOO_KEY: redact a generated-looking value only
export const A_SECRET = 2;
export type NameStrength = typeof NOT_A_SECRET | typeof MAYBE_A_SECRET | typeof A_SECRET;

function partStrength(parts: readonly string[], i: number): NameStrength {
  const part = parts[i] ?? "";
  if (part === "key") {
    const qualifier = parts[i - 1];
    if (qualifier === undefined || NON_SECRET_KEY_QUALIFIERS.has(qualifier)) return NOT_A_SECRET;
    return SECRET_KEY_QUALIFIERS.has(qualifier) ? A_SECRET : MAYBE_A_SECRET;
  }
  // SONAR_LOGIN, TWILIO_ACCOUNT_SID: tokens under names that also hold user names and ids.
  if (part === "login" || part === "sid") return MAYBE_A_SECRET;
  // SUMO_ACCESS_ID, as AWS's access key id: half of a key pair.
  if (part === "id" && parts[i - 1] === "access") return A_SECRET;
  const secret = SECRET_PARTS.has(part) || SECRET_SUFFIXES.some((suffix) => part.endsWith(suffix));
  return secret ? A_SECRET : NOT_A_SECRET;
}

export function nameStrength(name: string): NameStrength {
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
export function isLabelledSecret(name: string, value: string): boolean {
  if (isNotSecretValue(value)) return false;
  const strength = nameStrength(name);
  return strength === A_SECRET || (strength === MAYBE_A_SECRET && looksGenerated(value));
}
