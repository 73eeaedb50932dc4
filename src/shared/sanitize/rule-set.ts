import {
  BUNDLER_CREDENTIALS,
  CLI_FLAG,
  CURL_USER,
  GITHUB_ADD_MASK,
  MYSQL_PASSWORD,
  NETRC_PASSWORD,
  PACKAGE_MANAGER_CONFIG,
  REDIS_CLI_PASSWORD,
  REGISTRY_LOGIN_PASSWORD,
} from "./command-line-rules.ts";
import { AUTHORIZATION_HEADER, BEARER_TOKEN, COOKIE_HEADER } from "./header-rules.ts";
import {
  KEY_VALUE_ATTRIBUTES,
  LABELLED_VALUE,
  SECRET_PHRASE,
  SECRET_SET_BODY,
  XML_ELEMENT,
} from "./labelled-value-rules.ts";
import type { RedactionFamily } from "./redaction-families.ts";
import type { SecretPattern } from "./secret-pattern.ts";
import { PRIVATE_KEY, TOKEN_PATTERNS } from "./token-rules.ts";
import {
  QUERY_PARAMETER,
  URL_USERINFO,
  USERINFO_WITHOUT_SCHEME,
  WEBHOOK_URL,
} from "./url-rules.ts";

type FamilyPattern = SecretPattern & { readonly family: RedactionFamily };

const inFamily = (family: RedactionFamily, ...rules: readonly SecretPattern[]): FamilyPattern[] =>
  rules.map((rule) => ({ ...rule, family }));

/**
 * The rules in the order they run, each with its family (what the runner's metrics count
 * redactions by). URLs first (a database URL goes whole, the user info of others); labelled
 * values last, where an earlier rule's [REDACTED] is recognised and left alone.
 */
export const SECRET_PATTERNS: readonly FamilyPattern[] = [
  ...inFamily("private-key", PRIVATE_KEY),
  ...inFamily("url", WEBHOOK_URL, URL_USERINFO),
  ...inFamily("header", AUTHORIZATION_HEADER),
  ...inFamily("token", ...TOKEN_PATTERNS),
  ...inFamily("header", BEARER_TOKEN, COOKIE_HEADER),
  ...inFamily("url", QUERY_PARAMETER, USERINFO_WITHOUT_SCHEME),
  ...inFamily(
    "command-line",
    CURL_USER,
    BUNDLER_CREDENTIALS,
    REGISTRY_LOGIN_PASSWORD,
    MYSQL_PASSWORD,
    REDIS_CLI_PASSWORD,
    PACKAGE_MANAGER_CONFIG,
    NETRC_PASSWORD,
    GITHUB_ADD_MASK,
    CLI_FLAG,
  ),
  ...inFamily(
    "labelled-value",
    XML_ELEMENT,
    KEY_VALUE_ATTRIBUTES,
    SECRET_SET_BODY,
    LABELLED_VALUE,
    SECRET_PHRASE,
  ),
];
