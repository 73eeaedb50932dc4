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
import type { SecretPattern } from "./secret-pattern.ts";
import { PRIVATE_KEY, TOKEN_PATTERNS } from "./token-rules.ts";
import {
  QUERY_PARAMETER,
  URL_USERINFO,
  USERINFO_WITHOUT_SCHEME,
  WEBHOOK_URL,
} from "./url-rules.ts";

/**
 * The rules in the order they run. URLs first (a database URL goes whole, the user info of others); labelled values last, where an
 * earlier rule's [REDACTED] is recognised and left alone.
 */
export const SECRET_PATTERNS: readonly SecretPattern[] = [
  PRIVATE_KEY,
  WEBHOOK_URL,
  URL_USERINFO,
  AUTHORIZATION_HEADER,
  ...TOKEN_PATTERNS,
  BEARER_TOKEN,
  COOKIE_HEADER,
  QUERY_PARAMETER,
  USERINFO_WITHOUT_SCHEME,
  CURL_USER,
  BUNDLER_CREDENTIALS,
  REGISTRY_LOGIN_PASSWORD,
  MYSQL_PASSWORD,
  REDIS_CLI_PASSWORD,
  PACKAGE_MANAGER_CONFIG,
  NETRC_PASSWORD,
  GITHUB_ADD_MASK,
  CLI_FLAG,
  XML_ELEMENT,
  KEY_VALUE_ATTRIBUTES,
  SECRET_SET_BODY,
  LABELLED_VALUE,
  SECRET_PHRASE,
];
