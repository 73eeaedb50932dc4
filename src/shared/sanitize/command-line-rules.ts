import { isLabelledSecret, SECRET_NAME_WORDS } from "./label-names.ts";
import { REDACTED } from "./redacted.ts";
import { regexRule } from "./secret-pattern.ts";
import { isNotSecretValue, looksGenerated } from "./value-shapes.ts";

// curl -u user:pass, --user user:'pass', -u "user:pass"; -u TOKEN: (an API key as the user).
export const CURL_USER = regexRule(
  "curl-user",
  ["curl"],
  /(?<![A-Za-z0-9_-])(-u|--user)([ \t]{1,8}|=)(["']?)([^\s:"'`]{0,256}):(["']?)([^\s"'`]*)/g,
  (match, flag = "", separator = "", quote = "", user = "", passwordQuote = "", password = "") => {
    if (password !== "" && !isNotSecretValue(password)) {
      return `${flag}${separator}${quote}${user}:${passwordQuote}${REDACTED}`;
    }
    if (password === "" && looksGenerated(user) && !isNotSecretValue(user)) {
      return `${flag}${separator}${quote}${REDACTED}:${passwordQuote}`;
    }
    return match;
  },
);

// Bundler's credentials: BUNDLE_GEMS__EXAMPLE__COM=user:password, and bundle config set.
export const BUNDLER_CREDENTIALS = regexRule(
  "bundler-credentials",
  ["bundle_", "bundle config"],
  /((?<![A-Za-z0-9_])BUNDLE_[A-Z0-9_]{0,64}__[A-Z0-9_]{1,64}(?:=|:[ \t]{0,8})(["']?)|bundle[ \t]+config[ \t]+(?:set[ \t]+)?(?:--[a-z]{1,16}[ \t]+)?[A-Za-z0-9.-]{1,128}\.[A-Za-z]{2,24}[ \t]+(["']?))([^:\s"']{1,128}):([^\s"']+)/g,
  (match, prefix = "", _quote = "", _configQuote = "", user = "", password = "") =>
    isNotSecretValue(password) ? match : `${prefix}${user}:${REDACTED}`,
);

// Short password flags that mean a password only for these tools: `docker login -p x`,
// `mysql -px` (attached; `mysql -p db` prompts), `redis-cli -a x`.
export const REGISTRY_LOGIN_PASSWORD = regexRule(
  "registry-login-password",
  [
    "docker login",
    "podman login",
    "buildah login",
    "helm registry login",
    "oras login",
    "skopeo login",
  ],
  /(?<![A-Za-z0-9_-])(-p)([ \t]{1,8}|=)(["']?)([^\s"'`]+)/g,
  (match, flag = "", separator = "", quote = "", value = "") =>
    isNotSecretValue(value) ? match : `${flag}${separator}${quote}${REDACTED}`,
);

export const MYSQL_PASSWORD = regexRule(
  "mysql-password",
  ["mysql", "mariadb"],
  /(?<![A-Za-z0-9_-])(-p)([^\s"'`-][^\s"'`]*|["'][^"']*)/g,
  (match, flag = "", value = "") => {
    const quote = /^["']/.test(value) ? value.charAt(0) : "";
    return isNotSecretValue(value.slice(quote.length)) ? match : `${flag}${quote}${REDACTED}`;
  },
);

export const REDIS_CLI_PASSWORD = regexRule(
  "redis-cli-password",
  ["redis-cli"],
  /(?<![A-Za-z0-9_-])(-a|--pass)([ \t]{1,8})(["']?)([^\s"'`]+)/g,
  (match, flag = "", space = "", quote = "", value = "") =>
    isNotSecretValue(value) ? match : `${flag}${space}${quote}${REDACTED}`,
);

// npm config set //registry.example.com/:_authToken abc, yarn config set npmAuthToken abc
export const PACKAGE_MANAGER_CONFIG = regexRule(
  "package-manager-config",
  ["config set"],
  /((?:npm|yarn|pnpm)[ \t]+config[ \t]+set[ \t]+(?:--[a-z-]{1,32}[ \t]+)?)([^\s=]{1,256})([ \t]+)(["']?)([^\s"']+)/g,
  (match, command = "", name = "", space = "", quote = "", value = "") =>
    isLabelledSecret(name, value) ? `${command}${name}${space}${quote}${REDACTED}` : match,
);

// .netrc: machine host login user password secret
export const NETRC_PASSWORD = regexRule(
  "netrc-password",
  ["machine"],
  /(?<![A-Za-z0-9_-])((?:password|passwd)[ \t]+)([^\s"']+)/g,
  (match, label = "", value = "") => (isNotSecretValue(value) ? match : label + REDACTED),
);

// A workflow command that registers a secret prints the secret itself.
export const GITHUB_ADD_MASK = regexRule(
  "github-add-mask",
  ["::add-mask::"],
  /(::add-mask::)(.+)/g,
  (match, command = "", value = "") => (value.trim() === "" ? match : command + REDACTED),
);

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

// --password x, --api-key "x", -storepass x. The = form is the labelled-value rule's.
// docker buildx --secret id=npmrc,src=.npmrc names a secret, it is not one.
export const CLI_FLAG = regexRule(
  "cli-flag",
  SECRET_NAME_WORDS,
  /(?<![A-Za-z0-9_-])(--?[A-Za-z][A-Za-z0-9_-]{0,64})([ \t]{1,8})(?:"([^"]*)|'([^']*)|([^\s"'`-][^\s"'`]*))/g,
  (match, flag = "", space = "", doubleQuoted = "", singleQuoted = "", bare = "") => {
    const value = doubleQuoted || singleQuoted || bare;
    if (!isLabelledSecret(flag, value) || PROSE_AFTER_FLAG.has(value.toLowerCase())) return match;
    if (/^(?:id|type|src|source|env)=/.test(value)) return match;
    const quote = doubleQuoted ? '"' : singleQuoted ? "'" : "";
    return `${flag}${space}${quote}${REDACTED}`;
  },
);
