import { REDACTED } from "./redacted.ts";
import { regexRule, type SecretPattern, tokenRule } from "./secret-pattern.ts";

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

export const PRIVATE_KEY = tokenRule(
  "private-key",
  ["private key"],
  // To END when it is on the line, else to the end of the line (a JSON-escaped key has \n).
  /-----BEGIN[ A-Z0-9_-]{0,64}PRIVATE KEY(?: BLOCK)?-----[\s\S]*?(?:-----END[ A-Z0-9_-]{0,64}PRIVATE KEY(?: BLOCK)?-----|$)/g,
  { shortRuns: true },
);

export const TOKEN_PATTERNS: readonly SecretPattern[] = [
  // OpenAI sk-/sk-proj-/sk-svcacct-, Anthropic sk-ant-api03-, OpenRouter sk-or-v1-, DeepSeek.
  regexRule(
    "openai-anthropic-api-key",
    ["sk-"],
    /(?<![A-Za-z0-9_-])sk-[A-Za-z0-9_-]{20,}/g,
    unlessKebab,
  ),
  tokenRule(
    "github-token",
    ["ghp_", "gho_", "ghu_", "ghs_", "ghr_"],
    /(?<![A-Za-z0-9_])gh[pousr]_[A-Za-z0-9]{30,}/g,
  ),
  tokenRule(
    "github-fine-grained-pat",
    ["github_pat_"],
    /(?<![A-Za-z0-9_])github_pat_[A-Za-z0-9_]{40,}/g,
  ),
  tokenRule(
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
  tokenRule("npm-token", ["npm_"], /(?<![A-Za-z0-9_])npm_[A-Za-z0-9]{36,}/g),
  tokenRule("slack-token", ["xox"], /(?<![A-Za-z0-9_-])xox[abposre]-[A-Za-z0-9-]{10,}/g),
  tokenRule("slack-app-token", ["xapp-"], /(?<![A-Za-z0-9_-])xapp-\d-[A-Za-z0-9-]{10,}/g),
  tokenRule("google-api-key", ["aiza"], /(?<![A-Za-z0-9_-])AIza[A-Za-z0-9_-]{30,}/g),
  tokenRule(
    "google-oauth-client-secret",
    ["gocspx-"],
    /(?<![A-Za-z0-9_-])GOCSPX-[A-Za-z0-9_-]{20,}/g,
  ),
  tokenRule(
    "google-oauth-access-token",
    ["ya29."],
    /(?<![A-Za-z0-9_.-])ya29\.[A-Za-z0-9_.-]{20,}/g,
  ),
  tokenRule("google-oauth-refresh-token", ["1//0"], /(?<![A-Za-z0-9_/-])1\/\/0[A-Za-z0-9_-]{30,}/g),
  // Access key ids only: AGPA/AIDA/AROA... name IAM entities and are not credentials.
  tokenRule(
    "aws-access-key-id",
    ["akia", "asia", "abia", "acca", "a3t"],
    /(?<![A-Za-z0-9])(?:A3T[A-Z0-9]|AKIA|ASIA|ABIA|ACCA)[A-Z0-9]{16}(?![A-Za-z0-9])/g,
  ),
  // Stripe, and Clerk, which uses the same sk_live_/pk_test_ shapes.
  tokenRule(
    "stripe-key",
    ["_live_", "_test_", "_prod_"],
    /(?<![A-Za-z0-9_])(?:sk|pk|rk)_(?:live|test|prod)_[A-Za-z0-9]{10,}/g,
  ),
  tokenRule("stripe-webhook-secret", ["whsec_"], /(?<![A-Za-z0-9_])whsec_[A-Za-z0-9+/=]{20,}/g),
  tokenRule(
    "huggingface-token",
    ["hf_", "api_org_"],
    /(?<![A-Za-z0-9_])(?:hf|api_org)_[A-Za-z0-9]{30,}/g,
  ),
  tokenRule("groq-api-key", ["gsk_"], /(?<![A-Za-z0-9_])gsk_[A-Za-z0-9]{40,}/g),
  tokenRule("replicate-api-token", ["r8_"], /(?<![A-Za-z0-9_-])r8_[A-Za-z0-9_-]{30,}/g),
  tokenRule("xai-api-key", ["xai-"], /(?<![A-Za-z0-9_-])xai-[A-Za-z0-9_]{40,}/g),
  tokenRule("perplexity-api-key", ["pplx-"], /(?<![A-Za-z0-9_-])pplx-[A-Za-z0-9]{40,}/g),
  tokenRule(
    "sendgrid-api-key",
    ["sg."],
    /(?<![A-Za-z0-9_.-])SG\.[A-Za-z0-9_-]{16,}\.[A-Za-z0-9_-]{30,}/g,
  ),
  tokenRule(
    "sendinblue-api-key",
    ["xkeysib-"],
    /(?<![A-Za-z0-9_-])xkeysib-[a-f0-9]{64}-[A-Za-z0-9]{16}/g,
  ),
  tokenRule("twilio-api-key", ["sk"], /(?<![A-Za-z0-9])SK[0-9a-fA-F]{32}(?![A-Za-z0-9])/g),
  tokenRule("mailgun-api-key", ["key-"], /(?<![A-Za-z0-9_-])key-[0-9a-f]{32}(?![A-Za-z0-9])/g),
  tokenRule("mailchimp-api-key", ["-us"], /(?<![A-Za-z0-9])[0-9a-f]{32}-us\d{1,2}(?![A-Za-z0-9])/g),
  tokenRule(
    "shopify-token",
    ["shpat_", "shpca_", "shppa_", "shpss_", "shptka_"],
    /(?<![A-Za-z0-9_])shp(?:at|ca|pa|ss|tka)_[a-fA-F0-9]{32,}/g,
  ),
  tokenRule("digitalocean-token", ["_v1_"], /(?<![A-Za-z0-9_])do[opr]_v1_[a-f0-9]{64}/g),
  tokenRule(
    "supabase-token",
    ["sbp_", "sb_secret_"],
    /(?<![A-Za-z0-9_])(?:sbp_[A-Za-z0-9_]{40,}|sb_secret_[A-Za-z0-9_-]{20,})/g,
  ),
  tokenRule(
    "doppler-token",
    ["dp."],
    /(?<![A-Za-z0-9_.-])dp\.(?:pt|st|sa|ct|scim|audit)\.[A-Za-z0-9]{40,}/g,
  ),
  tokenRule("pypi-token", ["pypi-age"], /(?<![A-Za-z0-9_-])pypi-AgE[A-Za-z0-9_-]{50,}/g),
  tokenRule("docker-token", ["dckr_"], /(?<![A-Za-z0-9_-])dckr_(?:pat|oat)_[A-Za-z0-9_-]{20,}/g),
  tokenRule("linear-api-key", ["lin_"], /(?<![A-Za-z0-9_])lin_(?:api|oauth)_[A-Za-z0-9]{32,}/g),
  tokenRule(
    "postman-api-key",
    ["pmak-"],
    /(?<![A-Za-z0-9_-])PMAK-[A-Za-z0-9]{20,}-[A-Za-z0-9]{20,}/g,
  ),
  tokenRule(
    "databricks-token",
    ["dapi"],
    /(?<![A-Za-z0-9])dapi[a-f0-9]{32}(?:-\d)?(?![A-Za-z0-9])/g,
  ),
  tokenRule("age-secret-key", ["age-secret-key-"], /AGE-SECRET-KEY-1[0-9A-Z]{50,}/g),
  // secretlint-rule-vercel: vcp_ vci_ vca_ vcr_ vck_
  tokenRule(
    "vercel-token",
    ["vcp_", "vci_", "vca_", "vcr_", "vck_"],
    /(?<![A-Za-z0-9_])vc[pikar]_[A-Za-z0-9]{20,}/g,
  ),
  tokenRule("netlify-token", ["nfp_"], /(?<![A-Za-z0-9_])nfp_[A-Za-z0-9_]{36,}/g),
  tokenRule("heroku-api-key", ["hrku-"], /(?<![A-Za-z0-9_-])HRKU-[A-Za-z0-9_-]{30,}/g),
  tokenRule(
    "cloudflare-api-token",
    ["cfk_", "cfut_", "cfat_"],
    /(?<![A-Za-z0-9_])cf(?:k|ut|at)_[A-Za-z0-9]{40,}/g,
  ),
  tokenRule(
    "cloudflare-origin-ca-key",
    ["v1.0-"],
    /(?<![A-Za-z0-9_.-])v1\.0-[a-f0-9]{24}-[a-f0-9]{100,}/g,
  ),
  tokenRule(
    "sentry-token",
    ["sntrys_", "sntryu_"],
    /(?<![A-Za-z0-9_])sntry[su]_[A-Za-z0-9+/=_-]{40,}/g,
  ),
  tokenRule(
    "grafana-token",
    ["glsa_", "glc_"],
    /(?<![A-Za-z0-9_])(?:glsa_[A-Za-z0-9]{32}_[A-Fa-f0-9]{8}|glc_[A-Za-z0-9+/]{32,}={0,3})/g,
  ),
  tokenRule(
    "grafana-api-key",
    ["eyjrijoi"],
    /(?<![A-Za-z0-9+/_-])eyJrIjoi[A-Za-z0-9+/]{50,}={0,3}/g,
  ),
  tokenRule(
    "vault-token",
    ["hvs.", "hvb.", "hvr."],
    /(?<![A-Za-z0-9_.-])hv[sbr]\.[A-Za-z0-9_-]{24,}/g,
  ),
  tokenRule(
    "terraform-cloud-token",
    ["atlasv1"],
    /(?<![A-Za-z0-9])[A-Za-z0-9]{14}\.atlasv1\.[A-Za-z0-9_=-]{60,}/g,
  ),
  tokenRule("pulumi-token", ["pul-"], /(?<![A-Za-z0-9_-])pul-[a-f0-9]{40}/g),
  tokenRule("1password-token", ["ops_"], /(?<![A-Za-z0-9_])ops_eyJ[A-Za-z0-9+/=_-]{50,}/g),
  tokenRule(
    "atlassian-token",
    ["atatt3", "atctt3", "atbb"],
    /(?<![A-Za-z0-9_-])(?:ATATT3|ATCTT3|ATBB)[A-Za-z0-9_=-]{30,}/g,
  ),
  tokenRule(
    "notion-token",
    ["ntn_", "secret_"],
    /(?<![A-Za-z0-9_])(?:ntn_[A-Za-z0-9]{40,}|secret_[A-Za-z0-9]{43}(?![A-Za-z0-9]))/g,
  ),
  tokenRule("figma-token", ["figd_"], /(?<![A-Za-z0-9_-])figd_[A-Za-z0-9_-]{40,}/g),
  tokenRule("airtable-token", ["pat"], /(?<![A-Za-z0-9_])pat[A-Za-z0-9]{14}\.[a-f0-9]{64}/g),
  tokenRule(
    "square-token",
    ["sq0atp-", "sq0csp-"],
    /(?<![A-Za-z0-9_-])sq0(?:atp|csp)-[A-Za-z0-9_-]{22,}/g,
  ),
  tokenRule("facebook-token", ["eaa"], /(?<![A-Za-z0-9_])EAA[A-Z][A-Za-z0-9]{90,}/g),
  tokenRule("jfrog-token", ["akcp"], /(?<![A-Za-z0-9])AKCp[A-Za-z0-9]{60,}/g),
  tokenRule("rubygems-token", ["rubygems_"], /(?<![A-Za-z0-9_])rubygems_[a-f0-9]{48}/g),
  tokenRule("nuget-api-key", ["oy2"], /(?<![A-Za-z0-9])oy2[a-z0-9]{43}(?![A-Za-z0-9])/g),
  tokenRule("clojars-token", ["clojars_"], /(?<![A-Za-z0-9_])CLOJARS_[a-z0-9]{60}/g),
  tokenRule(
    "planetscale-token",
    ["pscale_"],
    /(?<![A-Za-z0-9_])pscale_(?:tkn|oauth|pw)_[A-Za-z0-9_=.-]{32,}/g,
  ),
  tokenRule("neon-api-key", ["napi_"], /(?<![A-Za-z0-9_])napi_[a-z0-9]{60,}/g),
  tokenRule(
    "tailscale-key",
    ["tskey-"],
    // Glued to what precedes it (TS_tskey-..., key9tskey-...): the prefix alone is telling.
    /tskey-[a-z]{3,8}-[A-Za-z0-9-]{20,}/g,
  ),
  tokenRule(
    "new-relic-key",
    ["nrak-", "nrii-", "nraa-", "nrjs-"],
    /(?<![A-Za-z0-9_-])NR(?:AK|II|AA|JS)-[A-Za-z0-9_-]{19,}/g,
  ),
  tokenRule("new-relic-license-key", ["nral"], /(?<![A-Za-z0-9])[a-f0-9]{36}NRAL(?![A-Za-z0-9])/g),
  tokenRule("contentful-token", ["cfpat-"], /(?<![A-Za-z0-9_-])CFPAT-[A-Za-z0-9_-]{40,}/g),
  tokenRule("circleci-token", ["ccipat_"], /(?<![A-Za-z0-9_])CCIPAT_[A-Za-z0-9_]{30,}/g),
  tokenRule(
    "flyio-token",
    ["fo1_", "fm1", "fm2_"],
    /(?<![A-Za-z0-9_+/])(?:fo1_[A-Za-z0-9_-]{30,}|fm(?:1[ar]|2)_[A-Za-z0-9+/]{60,}={0,3})/g,
  ),
  tokenRule("render-api-key", ["rnd_"], /(?<![A-Za-z0-9_])rnd_[A-Za-z0-9]{30,}/g),
  tokenRule("dropbox-token", ["sl."], /(?<![A-Za-z0-9_.-])sl\.(?:u\.)?[A-Za-z0-9_-]{100,}/g),
  tokenRule(
    "mapbox-secret-token",
    ["sk.eyj"],
    /(?<![A-Za-z0-9_.-])sk\.eyJ[A-Za-z0-9_-]{20,}\.[A-Za-z0-9_-]{20,}/g,
  ),
  tokenRule(
    "telegram-bot-token",
    [":aa"],
    /(?<![0-9])[0-9]{8,10}:AA[A-Za-z0-9_-]{33}(?![A-Za-z0-9_-])/g,
  ),
  tokenRule(
    "discord-bot-token",
    [],
    /(?<![A-Za-z0-9_-])[MNO][A-Za-z0-9_-]{23,25}\.[A-Za-z0-9_-]{6}\.[A-Za-z0-9_-]{27,}/g,
  ),
  // gitleaks azure-ad-client-secret: three characters, a digit, then Q~.
  tokenRule(
    "azure-ad-client-secret",
    ["q~"],
    /(?<![A-Za-z0-9_~.-])[A-Za-z0-9_~.]{3}\dQ~[A-Za-z0-9_~.-]{31,34}(?![A-Za-z0-9_~.-])/g,
  ),
  regexRule(
    "azure-storage-key",
    ["accountkey", "sharedaccesskey"],
    /(?<![A-Za-z0-9])(AccountKey|SharedAccessKey)=([A-Za-z0-9+/]{20,}={0,2})/gi,
    (_match, name = "") => `${name}=${REDACTED}`,
  ),
  tokenRule("sonar-token", ["sqp_", "squ_", "sqa_"], /(?<![A-Za-z0-9_])sq[pua]_[A-Za-z0-9]{40,}/g),
  tokenRule(
    "sourcegraph-token",
    ["sgp_"],
    /(?<![A-Za-z0-9_])sgp_(?:[a-f0-9]{16}_|local_)?[a-f0-9]{40}(?![A-Za-z0-9])/g,
  ),
  tokenRule(
    "launchdarkly-key",
    ["api-", "sdk-", "mob-"],
    /(?<![A-Za-z0-9_-])(?:api|sdk|mob)-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}(?![A-Za-z0-9_-])/g,
  ),
  tokenRule("octopus-api-key", ["api-"], /(?<![A-Za-z0-9_-])API-[A-Z0-9]{26,}(?![A-Za-z0-9])/g),
  tokenRule(
    "pinecone-api-key",
    ["pcsk_"],
    /(?<![A-Za-z0-9_])pcsk_[A-Za-z0-9]{4,8}_[A-Za-z0-9]{40,}/g,
  ),
  tokenRule(
    "1password-secret-key",
    ["a3-"],
    /(?<![A-Za-z0-9_-])A3-[A-Z0-9]{6}-(?:[A-Z0-9]{11}|[A-Z0-9]{6}-[A-Z0-9]{5})-[A-Z0-9]{5}-[A-Z0-9]{5}-[A-Z0-9]{5}(?![A-Za-z0-9])/g,
  ),
  tokenRule(
    "aws-bedrock-api-key",
    ["absk", "bedrock-api-key-"],
    /(?<![A-Za-z0-9+/])(?:ABSK[A-Za-z0-9+/]{100,}={0,2}|bedrock-api-key-[A-Za-z0-9+/=%&.-]{20,})/g,
    { shortRuns: true },
  ),
  tokenRule("twilio-account-sid", ["ac"], /(?<![A-Za-z0-9])AC[0-9a-f]{32}(?![A-Za-z0-9])/g),
  tokenRule(
    "alibaba-access-key-id",
    ["ltai"],
    /(?<![A-Za-z0-9])LTAI[A-Za-z0-9]{20}(?![A-Za-z0-9])/g,
  ),
  tokenRule(
    "convex-deploy-key",
    ["prod:", "dev:", "preview:", "project:"],
    /(?<![A-Za-z0-9_-])(?:prod|dev|preview|project):[A-Za-z0-9_-]{1,64}\|[A-Za-z0-9+/=_-]{40,}/g,
  ),
  tokenRule(
    "dynatrace-token",
    ["dt0c01."],
    /(?<![A-Za-z0-9])dt0c01\.[A-Za-z0-9]{24}\.[A-Za-z0-9]{64}/g,
  ),
  // Vault's legacy s.<24>: only with both cases and a digit, as generated tokens have them.
  regexRule(
    "vault-legacy-token",
    ["s."],
    /(?<![A-Za-z0-9_.$-])s\.[A-Za-z0-9]{24}(?![A-Za-z0-9_.(-])/g,
    (match) =>
      /[a-z]/.test(match.slice(2)) && /[A-Z]/.test(match) && /\d/.test(match) ? REDACTED : match,
    { needsLongRun: true },
  ),
  tokenRule(
    "harness-token",
    ["pat.", "sat."],
    /(?<![A-Za-z0-9_.-])(?:pat|sat)\.[A-Za-z0-9_-]{22}\.[A-Za-z0-9]{24}\.[A-Za-z0-9]{20}/g,
  ),
  tokenRule(
    "azure-search-admin-key",
    ["azse"],
    /(?<![A-Za-z0-9])[A-Za-z0-9]{42}AzSe[A-Za-z0-9]{6}(?![A-Za-z0-9])/g,
  ),
  tokenRule(
    "azure-devops-pat",
    ["azdo"],
    /(?<![A-Za-z0-9])[A-Za-z0-9]{52}JQQJ9[0-9A-Za-z]{5}AZDO[A-Za-z0-9]{4,24}(?![A-Za-z0-9])/g,
  ),
  tokenRule(
    "buildkite-token",
    ["bkua_", "bkct_", "bkat_"],
    /(?<![A-Za-z0-9_])bk(?:ua|ct|at)_[A-Za-z0-9]{40,}/g,
  ),
  tokenRule("elevenlabs-api-key", ["sk_"], /(?<![A-Za-z0-9_])sk_[a-f0-9]{40,}(?![A-Za-z0-9])/g),
  tokenRule(
    "flutterwave-key",
    ["flwseck", "flwpubk"],
    /(?<![A-Za-z0-9_-])FLW(?:SECK|PUBK)(?:_TEST)?-?[a-hA-H0-9]{12,}(?:-X)?/g,
  ),
  tokenRule("posthog-key", ["phc_", "phx_"], /(?<![A-Za-z0-9_])ph[cx]_[A-Za-z0-9]{32,}/g),
  tokenRule("jfrog-reference-token", ["cmvmd"], /(?<![A-Za-z0-9])cmVmd[A-Za-z0-9]{50,}/g),
  tokenRule("square-access-token", ["eaaa"], /(?<![A-Za-z0-9_-])EAAA[A-Za-z0-9_-]{40,}/g),
  tokenRule("prefect-api-key", ["pnu_"], /(?<![A-Za-z0-9_])pnu_[A-Za-z0-9]{36,}/g),
  tokenRule("readme-api-key", ["rdme_"], /(?<![A-Za-z0-9_])rdme_[a-z0-9]{60,}/g),
  tokenRule("scalingo-token", ["tk-us-"], /(?<![A-Za-z0-9_-])tk-us-[A-Za-z0-9_-]{40,}/g),
  tokenRule("shippo-token", ["shippo_"], /(?<![A-Za-z0-9_])shippo_(?:live|test)_[a-fA-F0-9]{40}/g),
  tokenRule("easypost-key", ["ezak", "eztk"], /(?<![A-Za-z0-9])EZ[AT]K[A-Za-z0-9]{50,}/g),
  tokenRule(
    "duffel-token",
    ["duffel_"],
    /(?<![A-Za-z0-9_])duffel_(?:live|test)_[A-Za-z0-9_=-]{40,}/g,
  ),
  tokenRule("frameio-token", ["fio-u-"], /(?<![A-Za-z0-9_-])fio-u-[A-Za-z0-9_=-]{60,}/g),
  tokenRule("infracost-key", ["ico-"], /(?<![A-Za-z0-9_-])ico-[A-Za-z0-9]{32}(?![A-Za-z0-9])/g),
  tokenRule(
    "maxmind-license-key",
    ["_mmk"],
    /(?<![A-Za-z0-9_])[A-Za-z0-9]{6}_[A-Za-z0-9]{29}_mmk/g,
  ),
  tokenRule("openshift-token", ["sha256~"], /(?<![A-Za-z0-9_-])sha256~[A-Za-z0-9_-]{43}/g),
  tokenRule(
    "adobe-client-secret",
    ["p8e-"],
    /(?<![A-Za-z0-9_-])p8e-[A-Za-z0-9]{32}(?![A-Za-z0-9])/g,
  ),
  tokenRule(
    "clickhouse-key-secret",
    ["4b1d"],
    /(?<![A-Za-z0-9])4b1d[A-Za-z0-9]{38}(?![A-Za-z0-9])/g,
  ),
  tokenRule("typeform-token", ["tfp_"], /(?<![A-Za-z0-9_])tfp_[A-Za-z0-9_.=-]{40,}/g),
  tokenRule(
    "yandex-key",
    ["aqvn", "t1."],
    /(?<![A-Za-z0-9_-])(?:AQVN[A-Za-z0-9_-]{35,38}|t1\.[A-Za-z0-9_-]{20,}={0,2}\.[A-Za-z0-9_-]{86}={0,2})/g,
  ),
  tokenRule("resend-api-key", ["re_"], /(?<![A-Za-z0-9_])re_[A-Za-z0-9]{8}_[A-Za-z0-9]{20,}/g),
  tokenRule("settlemint-token", ["sm_"], /(?<![A-Za-z0-9_])sm_(?:aat|pat|sat)_[A-Za-z0-9]{16,}/g),
  tokenRule("intra42-secret", ["s-s4t2"], /(?<![A-Za-z0-9_-])s-s4t2(?:ud|af)-[a-f0-9]{64}/g),
  tokenRule(
    "authress-key",
    [".acc"],
    /(?<![A-Za-z0-9_-])(?:sc|ext|scauth|authress)_[A-Za-z0-9]{5,30}\.[A-Za-z0-9]{4,6}\.acc[_-][A-Za-z0-9-]{10,32}\.[A-Za-z0-9+/_=-]{30,120}/g,
  ),
  tokenRule("gitlab-session", ["_gitlab_session="], /_gitlab_session=[0-9a-z]{32}/g),
  // A JWT: header.payload[.signature], both JSON objects, so both start with eyJ.
  tokenRule(
    "jwt",
    ["eyj"],
    /(?<![A-Za-z0-9_-])eyJ[A-Za-z0-9_-]{10,}\.eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]*/g,
  ),
];
