import { describe, expect, it } from "vitest";
import { redactSecretPatterns } from "../../src/shared/sanitize/redact-patterns.ts";
import { SECRET_PATTERNS } from "../../src/shared/sanitize/rule-set.ts";
import { regexRule, tokenRule } from "../../src/shared/sanitize/secret-pattern.ts";
import { seededRandom } from "../support/seeded-random.ts";

// Sample credentials are built here from obviously fake repeating text, so the repository holds
// no realistic secret literal. Only the shape of each format matters.
const cycle = (alphabet: string, length: number): string =>
  alphabet.repeat(Math.ceil(length / alphabet.length)).slice(0, length);
const alnum = (length: number): string => cycle("A1b2C3d4", length);
const hex = (length: number): string => cycle("0a1b2c3d4e5f6789", length);
const digits = (length: number): string => cycle("1234567890", length);
const base64url = (text: string): string =>
  btoa(text).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
const jwt = `${base64url('{"alg":"HS256","typ":"JWT"}')}.${base64url('{"sub":"1234567890","role":"test"}')}.${alnum(43)}`;

const R = "[REDACTED]";

/** [rule id, input, expected]: every rule in SECRET_PATTERNS must appear here at least once. */
const RULE_EXAMPLES: readonly (readonly [string, string, string])[] = [
  [
    "private-key",
    `-----BEGIN RSA PRIVATE KEY-----MIIE${alnum(64)}-----END RSA PRIVATE KEY-----`,
    R,
  ],
  ["url-userinfo", "postgresql://user:pass@host/db", R],
  [
    "webhook-url",
    `https://hooks.slack.com/services/T${alnum(8)}/B${alnum(8)}/${alnum(24)}`,
    `https://hooks.slack.com/services/${R}`,
  ],
  ["url-userinfo", "https://user:pass@github.com/x", `https://user:${R}@github.com/x`],
  [
    "url-userinfo",
    `git clone https://${alnum(40)}@github.com/acme/app.git`,
    `git clone https://${R}@github.com/acme/app.git`,
  ],
  ["authorization-header", `Authorization: Bearer ${alnum(32)}`, `Authorization: Bearer ${R}`],
  ["openai-anthropic-api-key", "sk-abcdefghijklmnopqrstuvwxyz", R],
  ["github-token", `ghp_${alnum(36)}`, R],
  ["github-fine-grained-pat", `github_pat_${alnum(22)}_${alnum(59)}`, R],
  ["gitlab-token", `glpat-${alnum(20)}`, R],
  ["npm-token", `npm_${alnum(36)}`, R],
  ["slack-token", `xoxb-${digits(12)}-${digits(13)}-${alnum(24)}`, R],
  ["slack-app-token", `xapp-1-A${alnum(10)}-${digits(13)}-${hex(64)}`, R],
  ["google-api-key", `AIza${alnum(35)}`, R],
  ["google-oauth-client-secret", `GOCSPX-${alnum(28)}`, R],
  ["google-oauth-access-token", `ya29.${alnum(80)}`, R],
  ["google-oauth-refresh-token", `1//0${alnum(60)}`, R],
  ["aws-access-key-id", "AKIA1234567890ABCDEF", R],
  ["stripe-key", `sk_live_${alnum(24)}`, R],
  ["stripe-webhook-secret", `whsec_${alnum(32)}`, R],
  ["huggingface-token", `hf_${alnum(34)}`, R],
  ["groq-api-key", `gsk_${alnum(52)}`, R],
  ["replicate-api-token", `r8_${alnum(37)}`, R],
  ["xai-api-key", `xai-${alnum(80)}`, R],
  ["perplexity-api-key", `pplx-${alnum(48)}`, R],
  ["sendgrid-api-key", `SG.${alnum(22)}.${alnum(43)}`, R],
  ["sendinblue-api-key", `xkeysib-${hex(64)}-${alnum(16)}`, R],
  ["twilio-api-key", `SK${hex(32)}`, R],
  ["mailgun-api-key", `key-${hex(32)}`, R],
  ["mailchimp-api-key", `${hex(32)}-us21`, R],
  ["shopify-token", `shpat_${hex(32)}`, R],
  ["digitalocean-token", `dop_v1_${hex(64)}`, R],
  ["supabase-token", `sbp_${hex(40)}`, R],
  ["doppler-token", `dp.pt.${alnum(43)}`, R],
  ["pypi-token", `pypi-AgEIcHlwaS5vcmc${alnum(70)}`, R],
  ["docker-token", `dckr_pat_${alnum(27)}`, R],
  ["linear-api-key", `lin_api_${alnum(40)}`, R],
  ["postman-api-key", `PMAK-${hex(24)}-${hex(34)}`, R],
  ["databricks-token", `dapi${hex(32)}`, R],
  ["age-secret-key", `AGE-SECRET-KEY-1${cycle("QPZRY9X8GF2TVDW0S3JN54KHCE6MUA7L", 58)}`, R],
  ["vercel-token", `vcp_${alnum(24)}`, R],
  ["netlify-token", `nfp_${alnum(36)}`, R],
  ["heroku-api-key", `HRKU-AA${alnum(58)}`, R],
  ["cloudflare-api-token", `cfut_${alnum(40)}${hex(8)}`, R],
  ["cloudflare-origin-ca-key", `v1.0-${hex(24)}-${hex(146)}`, R],
  ["sentry-token", `sntryu_${hex(64)}`, R],
  ["grafana-token", `glsa_${alnum(32)}_${hex(8)}`, R],
  ["grafana-api-key", `eyJrIjoi${alnum(70)}`, R],
  ["vault-token", `hvs.${alnum(90)}`, R],
  ["terraform-cloud-token", `${alnum(14)}.atlasv1.${alnum(67)}`, R],
  ["pulumi-token", `pul-${hex(40)}`, R],
  ["1password-token", `ops_eyJ${alnum(120)}`, R],
  ["atlassian-token", `ATATT3${alnum(180)}`, R],
  ["notion-token", `ntn_${digits(11)}${alnum(35)}`, R],
  ["figma-token", `figd_${alnum(40)}`, R],
  ["airtable-token", `pat${alnum(14)}.${hex(64)}`, R],
  ["square-token", `sq0atp-${alnum(22)}`, R],
  ["facebook-token", `EAAC${alnum(120)}`, R],
  ["sonar-token", `sqp_${hex(40)}`, R],
  ["jfrog-token", `AKCp${alnum(69)}`, R],
  ["rubygems-token", `rubygems_${hex(48)}`, R],
  ["nuget-api-key", `oy2${cycle("a1b2c3", 43)}`, R],
  ["clojars-token", `CLOJARS_${cycle("a1b2c3", 60)}`, R],
  ["planetscale-token", `pscale_tkn_${alnum(43)}`, R],
  ["neon-api-key", `napi_${cycle("a1b2c3", 64)}`, R],
  ["tailscale-key", `tskey-auth-${alnum(12)}-${alnum(30)}`, R],
  ["new-relic-key", `NRAK-${alnum(27)}`, R],
  ["contentful-token", `CFPAT-${alnum(43)}`, R],
  ["buildkite-token", `bkua_${hex(40)}`, R],
  ["circleci-token", `CCIPAT_${alnum(40)}`, R],
  ["flyio-token", `FlyV1 fm2_${alnum(120)}`, `FlyV1 ${R}`],
  ["render-api-key", `rnd_${alnum(32)}`, R],
  ["dropbox-token", `sl.${alnum(140)}`, R],
  ["mapbox-secret-token", `sk.eyJ${alnum(60)}.${alnum(22)}`, R],
  [
    "telegram-bot-token",
    `https://api.telegram.org/bot123456789:AA${alnum(33)}/getMe`,
    `https://api.telegram.org/bot${R}/getMe`,
  ],
  ["discord-bot-token", `M${alnum(25)}.${alnum(6)}.${alnum(38)}`, R],
  ["azure-ad-client-secret", `AZURE_CLIENT_SECRET=abc8Q~${alnum(34)}`, `AZURE_CLIENT_SECRET=${R}`],
  [
    "azure-storage-key",
    `DefaultEndpointsProtocol=https;AccountName=acme;AccountKey=${alnum(86)}==;EndpointSuffix=core.windows.net`,
    `DefaultEndpointsProtocol=https;AccountName=acme;AccountKey=${R};EndpointSuffix=core.windows.net`,
  ],
  ["jwt", jwt, R],
  ["bearer-token", `curl -H "X-Token: Bearer ${alnum(40)}"`, `curl -H "X-Token: Bearer ${R}"`],
  ["cookie-header", "Cookie: theme=dark; session=abc123", `Cookie: theme=${R}; session=${R}`],
  [
    "query-parameter",
    "https://bucket.s3.amazonaws.com/a.zip?X-Amz-Signature=abc123&X-Amz-Date=20240101T000000Z",
    `https://bucket.s3.amazonaws.com/a.zip?X-Amz-Signature=${R}&X-Amz-Date=20240101T000000Z`,
  ],
  [
    "userinfo-password",
    "Connecting to admin:hunter2@db.internal:5432",
    `Connecting to admin:${R}@db.internal:5432`,
  ],
  [
    "curl-user",
    "curl -u admin:hunter2 https://example.com",
    `curl -u admin:${R} https://example.com`,
  ],
  [
    "registry-login-password",
    "docker login -u ci -p hunter2 ghcr.io",
    `docker login -u ci -p ${R} ghcr.io`,
  ],
  ["mysql-password", "mysql -u root -phunter2 app", `mysql -u root -p${R} app`],
  ["redis-cli-password", "redis-cli -h cache -a hunter2 ping", `redis-cli -h cache -a ${R} ping`],
  ["github-add-mask", "::add-mask::abc123", `::add-mask::${R}`],
  [
    "package-manager-config",
    "npm config set //registry.example.com/:_authToken abc123",
    `npm config set //registry.example.com/:_authToken ${R}`,
  ],
  [
    "netrc-password",
    "machine github.com login ci password abc123",
    `machine github.com login ci password ${R}`,
  ],
  ["cli-flag", "mysqladmin --password hunter2 status", `mysqladmin --password ${R} status`],
  ["xml-element", "<password>hunter2</password>", `<password>${R}</password>`],
  ["labelled-value", "API_KEY=sk-abc123def456ghi789", `API_KEY=${R}`],
  ["secret-phrase", `Your new API token is ${alnum(40)}`, `Your new API token is ${R}`],
  [
    "secret-set-body",
    `gh secret set NPM_TOKEN --body "${alnum(36)}"`,
    `gh secret set NPM_TOKEN --body "${R}"`,
  ],
  [
    "key-value-attributes",
    '<add key="ClearTextPassword" value="hunter2hunter2" />',
    `<add key="ClearTextPassword" value="${R}" />`,
  ],
  ["new-relic-license-key", `${hex(36)}NRAL`, R],
  ["sourcegraph-token", `sgp_local_${hex(40)}`, R],
  ["launchdarkly-key", `sdk-${hex(8)}-${hex(4)}-${hex(4)}-${hex(4)}-${hex(12)}`, R],
  ["octopus-api-key", `API-${cycle("A1B2C3D4E5", 26)}`, R],
  ["pinecone-api-key", `pcsk_${alnum(5)}_${alnum(63)}`, R],
  [
    "1password-secret-key",
    `A3-${cycle("A1B2C3", 6)}-${cycle("D4E5F6", 6)}-A1B2C-D3E4F-G5H6J-K7L8M`,
    R,
  ],
  ["aws-bedrock-api-key", `ABSK${cycle("QmVk+cm9/ja0F", 132)}`, R],
  ["twilio-account-sid", `AC${hex(32)}`, R],
  ["alibaba-access-key-id", `LTAI${alnum(20)}`, R],
  ["convex-deploy-key", `prod:happy-otter-123|${alnum(80)}`, R],
  ["dynatrace-token", `dt0c01.${cycle("A1B2C3D4", 24)}.${alnum(64)}`, R],
  ["vault-legacy-token", `VAULT_TOKEN is s.${alnum(24)}`, `VAULT_TOKEN is ${R}`],
  ["harness-token", `pat.${alnum(22)}.${alnum(24)}.${alnum(20)}`, R],
  ["azure-search-admin-key", `${alnum(42)}AzSe${alnum(6)}`, R],
  ["azure-devops-pat", `${alnum(52)}JQQJ99A1b2AZDO${alnum(20)}`, R],
  ["buildkite-token", `bkua_${hex(40)}`, R],
  ["elevenlabs-api-key", `sk_${hex(48)}`, R],
  ["flutterwave-key", `FLWSECK_TEST-${hex(32)}-X`, R],
  ["posthog-key", `phx_${alnum(43)}`, R],
  ["jfrog-reference-token", `cmVmdGtuOjAxOjE3${alnum(48)}`, R],
  ["square-access-token", `EAAA${alnum(60)}`, R],
  ["prefect-api-key", `pnu_${alnum(36)}`, R],
  ["readme-api-key", `rdme_${cycle("a1b2c3", 70)}`, R],
  ["scalingo-token", `tk-us-${alnum(48)}`, R],
  ["shippo-token", `shippo_live_${hex(40)}`, R],
  ["easypost-key", `EZAK${alnum(54)}`, R],
  ["duffel-token", `duffel_test_${alnum(43)}`, R],
  ["frameio-token", `fio-u-${alnum(64)}`, R],
  ["infracost-key", `ico-${alnum(32)}`, R],
  ["maxmind-license-key", `${alnum(6)}_${alnum(29)}_mmk`, R],
  ["openshift-token", `sha256~${alnum(43)}`, R],
  ["adobe-client-secret", `p8e-${alnum(32)}`, R],
  ["clickhouse-key-secret", `4b1d${alnum(38)}`, R],
  ["typeform-token", `tfp_${alnum(44)}_${alnum(14)}`, R],
  ["yandex-key", `AQVN${alnum(36)}`, R],
  ["resend-api-key", `re_${alnum(8)}_${alnum(24)}`, R],
  ["settlemint-token", `sm_pat_${alnum(16)}`, R],
  ["intra42-secret", `s-s4t2ud-${hex(64)}`, R],
  ["authress-key", `sc_${alnum(10)}.${alnum(5)}.acc_${alnum(20)}.${alnum(60)}`, R],
  ["gitlab-session", `_gitlab_session=${cycle("0a1b2c3d", 32)}`, R],
  [
    "bundler-credentials",
    `BUNDLE_GEMS__CONTRIBSYS__COM=${hex(8)}:${hex(8)}`,
    `BUNDLE_GEMS__CONTRIBSYS__COM=${hex(8)}:${R}`,
  ],
];

describe("the exact examples of the contract", () => {
  it.each([
    ["API_KEY=sk-abc123def456ghi789", `API_KEY=${R}`],
    ["sk-abcdefghijklmnopqrstuvwxyz", R],
    ["postgresql://user:pass@host/db", R],
    ["AKIA1234567890ABCDEF", R],
    ["https://user:pass@github.com/x", `https://user:${R}@github.com/x`],
    ["Authorization: Bearer abc.def", `Authorization: Bearer ${R}`],
  ])("%s", (input, expected) => {
    expect(redactSecretPatterns(input)).toBe(expected);
  });
});

describe("every rule", () => {
  it.each(RULE_EXAMPLES)("%s redacts %s", (_id, input, expected) => {
    expect(redactSecretPatterns(input)).toBe(expected);
  });

  it("has an example above", () => {
    const covered = new Set(RULE_EXAMPLES.map(([id]) => id));
    expect(SECRET_PATTERNS.map((rule) => rule.id).filter((id) => !covered.has(id))).toEqual([]);
  });

  it("has a unique id and lowercase keywords", () => {
    const ids = SECRET_PATTERNS.map((rule) => rule.id);
    expect(new Set(ids).size).toBe(ids.length);
    for (const rule of SECRET_PATTERNS) {
      // A rule without keywords runs on every line with a long run; it must need one.
      if (rule.keywords.length === 0) expect(rule.needsLongRun, rule.id).toBe(true);
      for (const keyword of rule.keywords) expect(keyword, rule.id).toBe(keyword.toLowerCase());
    }
  });
});

describe("rule construction", () => {
  it("refuses a regex without the g flag or with named groups", () => {
    expect(() => regexRule("x", ["x"], /x/, () => "")).toThrow(/g flag/);
    expect(() => tokenRule("x", ["x"], /x/)).toThrow(/g flag/);
    // The replace function is handed the positional groups only.
    expect(() => regexRule("x", ["x"], /(?<name>x)/g, () => "")).toThrow(/named group/);
  });
});

describe("database URLs with credentials are redacted whole", () => {
  it.each([
    "postgres://app:pw@db.internal:5432/app",
    "postgresql://user:pass@host/db?sslmode=require",
    "postgresql+asyncpg://user:pass@host/db",
    "redis://default:pw@cache.internal:6379",
    "rediss://:pw@cache.internal:6380/0",
    "mongodb://root:pw@mongo:27017/admin",
    "mongodb+srv://user:pw@cluster0.example.mongodb.net/db?retryWrites=true",
    "mysql://root:pw@localhost:3306/app",
    "mariadb://root:pw@localhost/app",
    "jdbc:postgresql://user:pw@host:5432/db",
    "amqps://user:pw@rabbit.internal/vhost",
    "sqlserver://sa:pw@localhost:1433",
    "postgres://user:p@ss@host/db",
  ])("%s", (url) => {
    expect(redactSecretPatterns(url)).toBe(R);
    expect(redactSecretPatterns(`DATABASE_URL=${url}`)).toBe(`DATABASE_URL=${R}`);
    expect(redactSecretPatterns(`connecting to "${url}" ...`)).toBe(`connecting to "${R}" ...`);
  });

  it.each([
    "postgres://localhost:5432/app",
    "redis://localhost:6379",
    "redis://default@cache.internal:6379",
    "mongodb://mongo:27017/admin",
    "mysql://localhost/app",
  ])("keeps %s, which has no password", (url) => {
    expect(redactSecretPatterns(url)).toBe(url);
  });
});

describe("URL user info", () => {
  it.each([
    ["https://user:pass@github.com/x", `https://user:${R}@github.com/x`],
    [
      `https://x-access-token:ghs_${alnum(36)}@github.com/acme/app.git`,
      `https://x-access-token:${R}@github.com/acme/app.git`,
    ],
    [
      "git clone https://oauth2:abc123@gitlab.example.com/acme/app.git",
      `git clone https://oauth2:${R}@gitlab.example.com/acme/app.git`,
    ],
    ["ftp://admin:p@ss:w0rd@files.example.com/", `ftp://admin:${R}@files.example.com/`],
    [
      "Sentry DSN https://pub123:priv456@o1.ingest.sentry.io/42",
      `Sentry DSN https://pub123:${R}@o1.ingest.sentry.io/42`,
    ],
    [`https://${alnum(40)}@github.com`, `https://${R}@github.com`],
  ])("%s", (input, expected) => {
    expect(redactSecretPatterns(input)).toBe(expected);
  });

  it.each([
    "https://registry.example.com/react/-/react-18.2.0.tgz",
    "http://localhost:3000",
    "http://127.0.0.1:5173/",
    "https://github.com/acme/app/blob/main/src/index.ts#L12",
    "git@github.com:acme/app.git",
    "ssh://git@github.com/acme/app.git",
    "https://x-access-token:${GITHUB_TOKEN}@github.com/acme/app.git",
    "https://user:***@github.com/x",
    "webpack://app/./src/index.ts:12:5",
    "https://registry.example.com/@scope%2fpkg",
    "http://[::1]:8080/health",
  ])("keeps %s", (url) => {
    expect(redactSecretPatterns(url)).toBe(url);
  });
});

describe("provider token formats", () => {
  it.each([
    `gho_${alnum(36)}`,
    `ghu_${alnum(36)}`,
    `ghs_${alnum(36)}`,
    `ghr_${alnum(36)}`,
    `gldt-${alnum(20)}`,
    `glrt-t1_${alnum(27)}.01.${cycle("a1b2", 7)}`,
    `glptt-${hex(40)}`,
    `glcbt-2_${alnum(20)}`,
    `GR1348941${alnum(20)}`,
    `xoxp-${digits(12)}-${digits(12)}-${digits(12)}-${hex(32)}`,
    `xoxa-2-${alnum(40)}`,
    `sk-proj-${alnum(74)}T3BlbkFJ${alnum(74)}`,
    `sk-proj-${alnum(40)}-${alnum(20)}_${alnum(40)}`,
    `sk-ant-api03-${alnum(93)}AA`,
    `sk-or-v1-${hex(64)}`,
    `sk-${alnum(20)}T3BlbkFJ${alnum(20)}`,
    `ASIA${cycle("ABCD2345", 16)}`,
    `pk_live_${alnum(24)}`,
    `sk_test_${alnum(24)}`,
    `pk_test_${alnum(24)}`,
    `rk_live_${alnum(24)}`,
    `api_org_${alnum(34)}`,
    `shpca_${hex(32)}`,
    `shppa_${hex(32)}`,
    `shpss_${hex(32)}`,
    `doo_v1_${hex(64)}`,
    `sb_secret_${alnum(32)}`,
    `dp.st.prod.${alnum(43)}`.replace("prod.", ""),
    `dckr_oat_${alnum(32)}`,
    `lin_oauth_${alnum(40)}`,
    `dapi${hex(32)}-2`,
    `vck_${alnum(40)}`,
    `cfk_${alnum(40)}${hex(8)}`,
    `sntrys_eyJpYXQiO${alnum(80)}`,
    `glc_${alnum(40)}==`,
    `hvb.${alnum(100)}`,
    `ATBB${alnum(32)}`,
    `secret_${alnum(43)}`,
    `sq0csp-${alnum(43)}`,
    `squ_${hex(40)}`,
    `pscale_pw_${alnum(43)}`,
    `fo1_${alnum(43)}`,
    `sl.u.${alnum(140)}`,
    `NRII-${alnum(32)}`,
    `tskey-api-${alnum(12)}-${alnum(30)}`,
  ])("%s", (token) => {
    expect(redactSecretPatterns(token)).toBe(R);
  });

  it.each([
    [`GITHUB_TOKEN=ghp_${alnum(36)}`, `GITHUB_TOKEN=${R}`],
    [
      `npm publish failed with token npm_${alnum(36)} (E401)`,
      `npm publish failed with token ${R} (E401)`,
    ],
    [`"key": "AIza${alnum(35)}",`, `"key": "${R}",`],
    [`Using key sk-proj-${alnum(48)}.`, `Using key ${R}.`],
    [`slack: xoxb-${digits(12)}-${digits(13)}-${alnum(24)} ok`, `slack: ${R} ok`],
    [`token=${jwt}; path=/`, `token=${R}; path=/`],
    [`SUPABASE_SERVICE_ROLE_KEY='${jwt}'`, `SUPABASE_SERVICE_ROLE_KEY='${R}'`],
    [`[${jwt}]`, `[${R}]`],
    [
      `https://discord.com/api/webhooks/${digits(19)}/${alnum(68)}`,
      `https://discord.com/api/webhooks/${R}`,
    ],
    [
      `https://acme.webhook.office.com/webhookb2/${alnum(36)}@${alnum(36)}/IncomingWebhook/${hex(32)}/${alnum(36)}`,
      `https://acme.webhook.office.com/webhookb2/${R}`,
    ],
    [
      `aws configure set aws_access_key_id AKIA1234567890ABCDEF`,
      `aws configure set aws_access_key_id ${R}`,
    ],
  ])("%s", (input, expected) => {
    expect(redactSecretPatterns(input)).toBe(expected);
  });
});

describe("labelled values keep the name, separator and quotes", () => {
  it.each([
    ["GITHUB_TOKEN=abc123def", `GITHUB_TOKEN=${R}`],
    ["db_password=hunter2", `db_password=${R}`],
    ["SECRET=x", `SECRET=${R}`],
    ["PASSWD=hunter2", `PASSWD=${R}`],
    ["MYSQL_PWD=hunter2", `MYSQL_PWD=${R}`],
    ["PGPASSWORD=hunter2 psql -h db", `PGPASSWORD=${R} psql -h db`],
    ["APIKEY=abc123", `APIKEY=${R}`],
    ["ACCESS_KEY=abc123", `ACCESS_KEY=${R}`],
    ["PRIVATE_KEY=abc123", `PRIVATE_KEY=${R}`],
    ["CLIENT_SECRET: abc123", `CLIENT_SECRET: ${R}`],
    ["CREDENTIALS=abc123", `CREDENTIALS=${R}`],
    ["AUTH_TOKEN=abc123", `AUTH_TOKEN=${R}`],
    ["NEXTAUTH_SECRET=abc123", `NEXTAUTH_SECRET=${R}`],
    ["SECRET_KEY_BASE=abc123", `SECRET_KEY_BASE=${R}`],
    // FOO_KEY with an unknown FOO needs a generated-looking value; API_KEY and friends do not.
    [`STRIPE_KEY=${alnum(32)}`, `STRIPE_KEY=${R}`],
    [`AZURE_STORAGE_KEY=${alnum(86)}==`, `AZURE_STORAGE_KEY=${R}`],
    [`APP_KEY=base64:${alnum(44)}`, `APP_KEY=${R}`],
    [`"sessionKey": "${alnum(24)}"`, `"sessionKey": "${R}"`],
    ["SIGNING_KEY=abc", `SIGNING_KEY=${R}`],
    ["GH_PAT=abc123", `GH_PAT=${R}`],
    [`aws_secret_access_key = ${alnum(20)}/${alnum(19)}`, `aws_secret_access_key = ${R}`],
    [`"SecretAccessKey": "${alnum(20)}+${alnum(19)}",`, `"SecretAccessKey": "${R}",`],
    ['"SessionToken": "IQoJb3JpZ2luX2Vj"', `"SessionToken": "${R}"`],
    ['"password": "hunter2"', `"password": "${R}"`],
    ['{"user":"bob","password":"correct horse battery"}', `{"user":"bob","password":"${R}"}`],
    [
      '{\\"password\\":\\"hunter2\\",\\"user\\":\\"bob\\"}',
      `{\\"password\\":\\"${R}\\",\\"user\\":\\"bob\\"}`,
    ],
    ['export NPM_TOKEN="abc123"', `export NPM_TOKEN="${R}"`],
    ["export API_KEY='abc 123'", `export API_KEY='${R}'`],
    ["//registry.example.com/:_authToken=abc123", `//registry.example.com/:_authToken=${R}`],
    ["//registry.example.com/:_auth=dXNlcjpwYXNz", `//registry.example.com/:_auth=${R}`],
    ["_auth=dXNlcjpwYXNz", `_auth=${R}`],
    ["//registry.example.com/:_password=aHVudGVyMg==", `//registry.example.com/:_password=${R}`],
    ["apiKey: 'abc123',", `apiKey: '${R}',`],
    ["password: hunter2", `password: ${R}`],
    ["POSTGRES_PASSWORD: postgres", `POSTGRES_PASSWORD: ${R}`],
    ["spring.datasource.password=hunter2", `spring.datasource.password=${R}`],
    ['$env:GITHUB_TOKEN = "abc123"', `$env:GITHUB_TOKEN = "${R}"`],
    [":password => 'hunter2'", `:password => '${R}'`],
    ["x-api-key: abc123", `x-api-key: ${R}`],
    ["PRIVATE-TOKEN: abc123", `PRIVATE-TOKEN: ${R}`],
    ["A_TOKEN=abc123 B_SECRET=def456 C=ok", `A_TOKEN=${R} B_SECRET=${R} C=ok`],
    ["docker build --build-arg NPM_TOKEN=abc123 .", `docker build --build-arg NPM_TOKEN=${R} .`],
    ["DB_PASSWORD=p@ss:w0rd/x", `DB_PASSWORD=${R}`],
    ["export TOKEN=abc123; npm publish", `export TOKEN=${R}; npm publish`],
    ["TOKEN := abc123", `TOKEN := ${R}`],
    [
      "Server=db;Database=app;User Id=sa;Password=hunter2;",
      `Server=db;Database=app;User Id=sa;Password=${R};`,
    ],
    ["PASSWORD_HASH=$2b$10$abcdefghijklmnopqrstuv", `PASSWORD_HASH=${R}`],
    ["GOOGLE_CREDENTIALS_JSON=eyJ0eXBlIjoic2VydmljZV9hY2NvdW50In0", `GOOGLE_CREDENTIALS_JSON=${R}`],
    ['const password = "hunter2";', `const password = "${R}";`],
    ["password = hunter2", `password = ${R}`],
    ["Password: Welcome", `Password: ${R}`],
    [
      'curl -H "X-API-Key: abc123" https://api.example.com',
      `curl -H "X-API-Key: ${R}" https://api.example.com`,
    ],
    ["npmAuthToken: abc123", `npmAuthToken: ${R}`],
    ["yarn config set npmAuthToken abc123", `yarn config set npmAuthToken ${R}`],
    ["heroku config:set SECRET_KEY=abc123", `heroku config:set SECRET_KEY=${R}`],
  ])("%s", (input, expected) => {
    expect(redactSecretPatterns(input)).toBe(expected);
  });

  it.each([
    ['"password": ""'],
    ["PASSWORD="],
    ["TOKEN=true"],
    ["NPM_TOKEN=false"],
    ["SECRET=null"],
    ["API_KEY=undefined"],
    ["SECRET=${SECRET}"],
    ["TOKEN=$TOKEN"],
    ["TOKEN=$(cat /run/secrets/token)"],
    ["NODE_AUTH_TOKEN: ${{ secrets.NPM_TOKEN }}"],
    ["API_KEY=process.env.API_KEY"],
    ["apiKey: process.env.API_KEY!,"],
    ["const apiKey = import.meta.env.VITE_API_KEY;"],
    ["GITHUB_TOKEN: ***"],
    ["PASSWORD=[REDACTED]"],
    ["password: string;"],
    ["token: string | undefined;"],
    ["password?: string;"],
    ["secret: Promise<string>;"],
    ["def login(password: str) -> bool:"],
    ["const token = getToken();"],
    ["const token = await getToken();"],
    ["const apiKey = config.apiKey;"],
    ["let secret = value;"],
    ["const token = jwt.sign(payload, secret);"],
    ["items.map(token => token.trim())"],
    ["headers.authorization = `Bearer ${token}`"],
    ["max_tokens: 1024"],
    ['"max_tokens": 1024,'],
    ["TOKEN_LIMIT=1000"],
    ["PASSWORD_MIN_LENGTH=8"],
    ["TOKEN_URL=https://auth.example.com/oauth/token"],
    ["SECRET_NAME=prod-db"],
    ["AUTH_PROVIDER=github"],
    ["credentials: 'include',"],
    ["withCredentials: true"],
    ["PWD=/app"],
    ["OLDPWD=/home/runner/work"],
    ["GOOGLE_APPLICATION_CREDENTIALS=/tmp/keys/service-account.json"],
    ['"next-auth": "^4.24.5",'],
    ['"jsonwebtoken": "9.0.2",'],
    ["secret-sauce==1.2.3"],
    ["monkey=banana"],
    ["keyboard=us"],
    ["key: node-cache-Linux-x64-npm-8f3a2c"],
    ["cache-key: node-modules-8f3a2c"],
    ["public_key=ssh-ed25519"],
    ["secrets: inherit"],
    ["Unexpected token: '<'"],
    ["token: expired"],
    ["pass: 12"],
    // code frames, as compilers print them
    ['const STORAGE_KEY = "app-settings";'],
    ['export declare const ssrDynamicImportKey = "__vite_ssr_dynamic_import__";'],
    ["function has(target: object, propertyKey: PropertyKey): boolean;"],
    ["encode?: (value: string, token: Key) => string;"],
    ["lastActiveToken: TokenResource | null;"],
    ["openTokenDepth = 0;"],
    ["lastKey: -1,"],
    ["MAX_KEY_SIZE_BYTES: 512,"],
    ["secret: 42,"],
    ["export declare function pbkdf2(password: Uint8Array, salt: Uint8Array): Uint8Array;"],
    ["declare const secret: unique symbol;"],
    ["benchmarkPass: benchmarkPass,"],
    ["'AWS4-HMAC-SHA256 Credential=' + this.accessKeyId + '/' + this.credentialString,"],
    ["npm config set registry https://registry.example.com/"],
    ['DATA_PROXY_SECRET: "MINIFLARE_PROXY_SECRET",'],
    ['type LocaleHourCycleKey = "h12" | "h23" | "h11" | "h24";'],
    ['const usernamePasswordInOptions = "username" in options && "password" in options;'],
    ["readonly cookie: (c: Context, options: DetectorOptions) => string | undefined;"],
    ['"proxy-authorization": !0,'],
    ["* - Token: `UPSTASH_REDIS_REST_TOKEN` or fallback to `KV_REST_API_TOKEN`"],
  ])("keeps %s", (line) => {
    expect(redactSecretPatterns(line)).toBe(line);
  });
});

describe("Authorization headers and bearer tokens", () => {
  it.each([
    ["Authorization: Bearer abc.def", `Authorization: Bearer ${R}`],
    [`> authorization: Bearer ${jwt}`, `> authorization: Bearer ${R}`],
    ["Authorization: Basic dXNlcjpwYXNz", `Authorization: Basic ${R}`],
    ["Authorization: token abc123", `Authorization: token ${R}`],
    ["Proxy-Authorization: Basic dXNlcjpwYXNz", `Proxy-Authorization: Basic ${R}`],
    ["Authorization: abc123 (from cache)", `Authorization: ${R} (from cache)`],
    [
      '"Authorization": "Bearer abc123", "Accept": "*/*"',
      `"Authorization": "Bearer ${R}", "Accept": "*/*"`,
    ],
    [
      "{ authorization: 'Bearer abc123', host: 'api' }",
      `{ authorization: 'Bearer ${R}', host: 'api' }`,
    ],
    [
      'git -c http.extraheader="AUTHORIZATION: basic eC1hY2Nlc3M=" fetch',
      `git -c http.extraheader="AUTHORIZATION: basic ${R}" fetch`,
    ],
    [
      "Authorization: AWS4-HMAC-SHA256 Credential=AKIA1234567890ABCDEF/20240101/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=abc123",
      `Authorization: AWS4-HMAC-SHA256 ${R}`,
    ],
    ['Authorization: Digest username="bob", response="6629fae4"', `Authorization: Digest ${R}`],
    [`Bearer ${alnum(40)}`, `Bearer ${R}`],
    ["using bearer abc123def456", `using bearer ${R}`],
  ])("%s", (input, expected) => {
    expect(redactSecretPatterns(input)).toBe(expected);
  });

  it.each([
    ["Authorization header missing"],
    ["Authorization: required"],
    ["headers: { Authorization: `Bearer ${token}` }"],
    ["authorization: 'Bearer ' + token,"],
    ["Bearer authentication is enabled"],
    ["Bearer token required"],
    ["Bearer <token>"],
  ])("keeps %s", (line) => {
    expect(redactSecretPatterns(line)).toBe(line);
  });
});

describe("signed URL and query parameters keep the parameter name", () => {
  it.each([
    [
      "https://b.s3.amazonaws.com/k?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIA%2F20240101%2Fus-east-1&X-Amz-Security-Token=IQoJb3&X-Amz-Signature=0a1b2c",
      `https://b.s3.amazonaws.com/k?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=${R}&X-Amz-Security-Token=${R}&X-Amz-Signature=${R}`,
    ],
    [
      "https://storage.googleapis.com/b/o?X-Goog-Credential=sa%40p.iam&X-Goog-Signature=0a1b",
      `https://storage.googleapis.com/b/o?X-Goog-Credential=${R}&X-Goog-Signature=${R}`,
    ],
    [
      "https://acme.blob.core.windows.net/c/b?sv=2022-11-02&sp=r&sig=abc%2Bdef%3D",
      `https://acme.blob.core.windows.net/c/b?sv=2022-11-02&sp=r&sig=${R}`,
    ],
    [
      "https://cdn.example.com/v.mp4?Expires=1700000000&Signature=abc~def&Key-Pair-Id=K2",
      `https://cdn.example.com/v.mp4?Expires=1700000000&Signature=${R}&Key-Pair-Id=K2`,
    ],
    [
      "https://api.example.com/cb?code=x&access_token=abc&refresh_token=def&id_token=ghi",
      `https://api.example.com/cb?code=x&access_token=${R}&refresh_token=${R}&id_token=${R}`,
    ],
    [
      "https://oauth.example.com/t?client_id=app&client_secret=abc123",
      `https://oauth.example.com/t?client_id=app&client_secret=${R}`,
    ],
    [
      "https://maps.example.com/js?key=abc123&callback=init",
      `https://maps.example.com/js?key=${R}&callback=init`,
    ],
    ["GET /v1/data?api_key=abc123 200", `GET /v1/data?api_key=${R} 200`],
    ["GET /v1/data?apikey=abc123&token=def456", `GET /v1/data?apikey=${R}&token=${R}`],
    ["see (https://x.example.com/?token=abc123)", `see (https://x.example.com/?token=${R})`],
  ])("%s", (input, expected) => {
    expect(redactSecretPatterns(input)).toBe(expected);
  });

  it.each([
    ["https://example.com/search?q=token&page=2"],
    ["https://example.com/?key=${API_KEY}"],
    ["https://example.com/a?v=3&sort=asc"],
  ])("keeps %s", (line) => {
    expect(redactSecretPatterns(line)).toBe(line);
  });
});

describe("private key blocks on one line", () => {
  it.each([
    [`-----BEGIN RSA PRIVATE KEY-----MIIE${alnum(64)}-----END RSA PRIVATE KEY-----`, R],
    [
      `key: -----BEGIN PRIVATE KEY-----MII${alnum(64)}-----END PRIVATE KEY----- (pem)`,
      `key: ${R} (pem)`,
    ],
    [
      `"private_key": "-----BEGIN PRIVATE KEY-----\\nMIIE${alnum(64)}\\n-----END PRIVATE KEY-----\\n",`,
      `"private_key": "${R}\\n",`,
    ],
    [`-----BEGIN OPENSSH PRIVATE KEY-----b3BlbnNzaC1rZXktdjE${alnum(40)}`, R],
    [`-----BEGIN PGP PRIVATE KEY BLOCK-----${alnum(40)}-----END PGP PRIVATE KEY BLOCK-----`, R],
    ["-----BEGIN ENCRYPTED PRIVATE KEY-----", R],
  ])("%s", (input, expected) => {
    expect(redactSecretPatterns(input)).toBe(expected);
  });

  it.each([
    ["-----BEGIN CERTIFICATE-----"],
    ["-----BEGIN PUBLIC KEY-----MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA"],
    ["ssh-keygen: generating private key..."],
  ])("keeps %s", (line) => {
    expect(redactSecretPatterns(line)).toBe(line);
  });
});

describe("command-line flags keep the flag", () => {
  it.each([
    ["--password x", `--password ${R}`],
    ["--password=x", `--password=${R}`],
    ["--token abc123", `--token ${R}`],
    ["--token=abc123", `--token=${R}`],
    ["--api-key abc123", `--api-key ${R}`],
    ['--secret "s3cr3t value"', `--secret "${R}"`],
    ["--client-secret abc123 --verbose", `--client-secret ${R} --verbose`],
    ["--auth-token abc123", `--auth-token ${R}`],
    ["vercel deploy --prod --token abc123", `vercel deploy --prod --token ${R}`],
    [
      "keytool -importkeystore -storepass changeit -keypass hunter2",
      `keytool -importkeystore -storepass ${R} -keypass ${R}`,
    ],
    [
      "docker login -u ci --password hunter2 registry.example.com",
      `docker login -u ci --password ${R} registry.example.com`,
    ],
    ["curl --user admin:hunter2 https://x", `curl --user admin:${R} https://x`],
    ['curl -u "admin:hunter2" https://x', `curl -u "admin:${R}" https://x`],
  ])("%s", (input, expected) => {
    expect(redactSecretPatterns(input)).toBe(expected);
  });

  // --password-file names where the secret is; the path is not the secret, so it stays.
  it.each([
    ["--password-file ./pw.txt"],
    ["echo $TOKEN | docker login --password-stdin -u ci"],
    ["docker buildx build --secret id=npmrc,src=.npmrc ."],
    ["pass --token to the CLI"],
    ["--no-password --verbose"],
    ["--token $NPM_TOKEN"],
    ["--access public"],
    ["docker run -u 1000:1000 node"],
    ["git push -u origin main"],
    ["WARNING! Using --password via the CLI is insecure. Use --password-stdin."],
    ["mysql -u root -p app"],
    ["docker run -p 3000:3000 app"],
  ])("keeps %s", (line) => {
    expect(redactSecretPatterns(line)).toBe(line);
  });
});

describe("ordinary build output passes unchanged", () => {
  it.each([
    "added 1234 packages, and audited 1235 packages in 12s",
    "npm warn deprecated inflight@1.0.6: This module is not supported, and leaks memory. Do not use it. Check out lru-cache if you want a good and tested way to coalesce async requests by a key value, which is much more comprehensive and powerful.",
    `npm warn deprecated glob@7.2.3: Glob versions prior to v9 are no longer supported`,
    "npm error code E401",
    "npm error Unable to authenticate, your authentication token seems to be invalid.",
    "npm error 401 Unauthorized - GET https://registry.example.com/@acme%2fui - authentication token not provided",
    "npm notice New major version of npm available! 10.2.4 -> 11.0.0",
    "npm notice Run `npm install -g npm@11.0.0` to update!",
    "192 packages are looking for funding",
    "found 0 vulnerabilities",
    "> app@0.1.0 build",
    "> tsc --noEmit && vite build",
    "vite v5.4.2 building for production...",
    "✓ 1423 modules transformed.",
    "dist/index.html                   0.46 kB │ gzip:  0.30 kB",
    "dist/assets/index-DiwrgTda.js  143.36 kB │ gzip: 46.11 kB",
    "dist/assets/index-BxK3q9Zp.css   12.04 kB │ gzip:  3.10 kB",
    "✓ built in 3.21s",
    "src/auth.ts(12,5): error TS2322: Type 'string' is not assignable to type 'number'.",
    "src/lib/token.ts:4:10 - error TS2305: Module '\"./api\"' has no exported member 'getToken'.",
    "Found 2 errors in 2 files.",
    "   ▲ Next.js 14.2.3",
    "   - Environments: .env.local, .env.production",
    "  Creating an optimized production build ...",
    " ✓ Compiled successfully",
    "   Linting and checking validity of types ...",
    " ✓ Generating static pages (12/12)",
    "Route (app)                              Size     First Load JS",
    "┌ ○ /                                    5.2 kB         92.4 kB",
    "├ ○ /_not-found                          871 B          88.1 kB",
    "├ ƒ /api/auth/[...nextauth]              0 B                0 B",
    "├ ƒ /api/token                           0 B                0 B",
    "└ ○ /settings/password                   1.3 kB         90.5 kB",
    "+ First Load JS shared by all            87.2 kB",
    "  ├ chunks/117-2c4a0d5a1bd1ab5c.js       31.6 kB",
    "  └ other shared chunks (total)          1.89 kB",
    "○  (Static)   prerendered as static content",
    "ƒ  (Dynamic)  server-rendered on demand",
    "commit 3f786850e387550fdab836ed7e6dc881de23001b",
    "HEAD is now at 3f78685 fix: refresh token rotation",
    "Merge pull request #42 from acme/feature/api-key-rotation",
    "request id 123e4567-e89b-12d3-a456-426614174000",
    "max_tokens: 1024",
    "SyntaxError: Unexpected token '<', \"<!DOCTYPE \"... is not valid JSON",
    "SyntaxError: Unexpected token } in JSON at position 12",
    "Loaded tokenizer from ./models/tokenizer.json",
    "  12 |   const token = getToken();",
    '  13 |   if (!apiKey) throw new Error("missing API key")',
    "     |                                ^",
    "  password: string;",
    "Using password authentication",
    'FATAL:  password authentication failed for user "postgres"',
    "process.env.API_KEY is not set",
    "env: NPM_TOKEN: ${{ secrets.NPM_TOKEN }}",
    "echo $NPM_TOKEN | wc -c",
    "keyboard-layout@2.0.17",
    "monkey=banana",
    "Cache restored from key: node-cache-Linux-x64-npm-5c2e1f0b7a9d",
    "Run actions/setup-node@v4",
    "Received 41943040 of 134217728 (31.3%), 39.9 MBs/sec",
    "#8 [builder 3/7] RUN --mount=type=secret,id=npm_token,target=/root/.npmrc npm ci",
    "#8 DONE 23.4s",
    "Step 5/12 : ARG NPM_TOKEN",
    " ---> Running in 4f6e1c9ab2d3",
    "Successfully built 4f6e1c9ab2d3",
    "Successfully tagged registry.example.com/acme/app:3f78685",
    "Collecting keyring==24.3.0",
    "Successfully installed passlib-1.7.4 python-jose-3.3.0",
    "WARN  Issues with peer dependencies found",
    "Progress: resolved 812, reused 790, downloaded 22, added 812, done",
    "Done in 14.3s.",
    "error Command failed with exit code 1.",
    "info Visit https://yarnpkg.com/en/docs/cli/run for documentation about this command.",
    "[INFO] BUILD SUCCESS",
    "Downloading https://repo.maven.apache.org/maven2/org/springframework/security/spring-security-crypto/6.2.1/spring-security-crypto-6.2.1.jar",
    "   Compiling jsonwebtoken v9.3.0",
    "go: downloading golang.org/x/oauth2 v0.16.0",
    "GET /api/auth/session 200 in 12ms",
    "warning: in the working copy of 'src/auth.ts', LF will be replaced by CRLF",
    "Serving on http://localhost:3000",
    "  ➜  Local:   http://localhost:5173/",
    'Sourcemap for "/app/node_modules/.vite/deps/chunk-ABCD1234.js" points to missing source files',
    "at Object.<anonymous> (/app/node_modules/jsonwebtoken/verify.js:12:5)",
    "at async Promise.all (index 0)",
    "    at verify (/app/src/auth/password.ts:88:11)",
    "Tests  42 passed (42)",
    "✓ test/auth.test.ts (12 tests) 34ms",
    "Task :app:compileKotlin",
    "SKIPPED [1] tests/test_tokens.py:12: requires network",
    "Deploying to production (https://app-3f78685-acme.vercel.app)",
    "@acme/auth:build: > tsc -p tsconfig.build.json",
    "auth-service:dev: ready in 1.2s",
    "> Task :auth:compileJava",
    "docker pull node:20.11-alpine@sha256:0a1b2c3d",
    "pnpm add @acme/auth@1.2.3",
    "│ └── UNMET OPTIONAL DEPENDENCY undici8@npm:undici@8.10.2",
    '"string-width-cjs": "npm:string-width@^4.2.0",',
    "Contact: mailto:security@example.com",
    "Cloning into 'auth-service'...",
    'warning "react-dom@18.2.0" has unmet peer dependency "react@^18.2.0".',
    'Warning: Each child in a list should have a unique "key" prop.',
    "  12:5  error  'token' is assigned a value but never used  no-unused-vars",
    "PASS src/auth.test.ts (4.2 s)",
    "Tests:       1 failed, 12 passed, 13 total",
    'level=info msg="token refreshed" token_type=bearer expires_in=3600 auth=ok',
    "WARNING! Your password will be stored unencrypted in /root/.docker/config.json.",
    "Login Succeeded",
    "  + password = (sensitive value)",
    "secret/app-secrets created",
    "[command]/usr/bin/git config --local http.https://github.com/.extraheader AUTHORIZATION: basic ***",
    "  persist-credentials: true",
    "Requirement already satisfied: keyring>=15.1 in /usr/lib/python3/dist-packages",
    'File "/app/auth/token.py", line 12, in verify',
    "Uploaded 12 files to https://acme.pages.dev",
    `  "integrity": "sha512-${cycle("q0Kz9vX+3bP/7aLmN2cR4tY6uW8eG1hJ5kS0dF/3gH+9jA2lQ7xZ1cV8bN4mM6pE", 86)}==",`,
  ])("%s", (line) => {
    expect(redactSecretPatterns(line)).toBe(line);
  });
});

describe("random identifiers that are not secrets pass unchanged", () => {
  const random = seededRandom(42);
  const pick = (alphabet: string, length: number): string =>
    Array.from({ length }, () => alphabet[Math.floor(random() * alphabet.length)]).join("");
  const HEX = "0123456789abcdef";
  const BASE64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  const CHUNK = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-";

  it.each([
    ["git SHAs", () => `commit ${pick(HEX, 40)}`],
    ["short SHAs", () => `HEAD is now at ${pick(HEX, 7)} fix build`],
    [
      "UUIDs",
      () => `${pick(HEX, 8)}-${pick(HEX, 4)}-4${pick(HEX, 3)}-a${pick(HEX, 3)}-${pick(HEX, 12)}`,
    ],
    ["lockfile integrity", () => `integrity sha512-${pick(BASE64, 86)}==`],
    ["sha256 digests", () => `sha256:${pick(HEX, 64)}`],
    ["vite chunk names", () => `dist/assets/index-${pick(CHUNK, 8)}.js  143.36 kB`],
    ["next chunk names", () => `chunks/${pick(HEX, 16)}.js  31.6 kB`],
    ["base64 blobs", () => `data:image/png;base64,${pick(BASE64, 120)}`],
  ])("%s", (_kind, make) => {
    const changed: string[] = [];
    for (let i = 0; i < 500; i++) {
      const line = make();
      if (redactSecretPatterns(line) !== line) changed.push(line);
    }
    expect(changed).toEqual([]);
  });
});

// Each line is about a megabyte and built to make a backtracking regex engine try every start
// position. That these finish at all is the point; the linearity itself is measured by hand.
describe("hostile input", () => {
  it.each([
    ["a", "a".repeat(1e6), null],
    ["sk-", "sk-".repeat(3e5), null],
    ["-a", "-a".repeat(5e5), null],
    ["token=", "token=".repeat(1e5), `token=${R}`],
    ["://", "://".repeat(3e5), null],
    ["eyJ", "eyJ".repeat(3e5), null],
    ["a:…@", `${"a:".repeat(5e5)}@`, null],
    ["https://a:…", `https://${"a:".repeat(5e5)}`, null],
    ["password: ", "password: ".repeat(1e5), `password: ${R} `.repeat(5e4)],
    ["key", "key".repeat(3e5), null],
    ["Authorization: ", "Authorization: ".repeat(6e4), `Authorization: ${R} `.repeat(3e4)],
    ["-----BEGIN PRIVATE KEY-----", "-----BEGIN PRIVATE KEY-----".repeat(4e4), R],
    ["postgres://a:", "postgres://a:".repeat(8e4), null],
    ["?token=&", "?token=&".repeat(1.2e5), null],
    ["Cookie: ", ":cookie".repeat(1.5e5), null],
    ["<password>", "<password>".repeat(1e5), null],
    ["Bearer ", "Bearer ".repeat(1.5e5), null],
    ["AKIA", "AKIA".repeat(2.5e5), null],
    ["M….", `${"M".repeat(25)}.`.repeat(4e4), null],
    ["A1b2", alnum(1e6), null],
  ])("%s", (_name, line, expected) => {
    expect(redactSecretPatterns(line)).toBe(expected ?? line);
  });
});
