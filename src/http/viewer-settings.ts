/** The build page's sign-in and Clerk settings (CLERK_SIGN_IN_URL, CLERK_PUBLISHABLE_KEY, CLERK_JS_URL). */
export interface ViewerSettings {
  /** Where a signed-out visitor is sent (Clerk's sign-in page); it returns to `redirect_url`. */
  readonly signInUrl: string | null;
  readonly publishableKey: string | null;
  /** Clerk's Frontend API host, from the publishable key. */
  readonly frontendApi: string | null;
  /** The SDK's URL: CLERK_JS_URL, else clerk-js v5 from the Frontend API. */
  readonly clerkJsUrl: string | null;
}

export interface ViewerVars {
  readonly signInUrl?: string | undefined;
  readonly publishableKey?: string | undefined;
  readonly clerkJsUrl?: string | undefined;
}

const isHttpUrl = (value: string): boolean =>
  URL.canParse(value) && /^https?:$/.test(new URL(value).protocol);

/** Clerk's publishable key is `pk_test_` or `pk_live_` and base64 of `<frontend API host>$`. */
export function frontendApiOf(key: string): string | null {
  const match = /^pk_(?:test|live)_([A-Za-z0-9+/]+={0,2})$/.exec(key);
  if (match?.[1] === undefined) return null;
  let decoded = "";
  try {
    decoded = atob(match[1]);
  } catch {
    return null;
  }
  const host = decoded.endsWith("$") ? decoded.slice(0, -1) : "";
  return /^[a-z0-9-]+(?:\.[a-z0-9-]+)+(?::\d{1,5})?$/i.test(host) ? host : null;
}

/** What is wrong with the variables, one message each (src/config.ts reports them together). */
export function viewerSettingsProblems(vars: ViewerVars): string[] {
  const problems: string[] = [];
  if (vars.signInUrl !== undefined && !isHttpUrl(vars.signInUrl))
    problems.push("CLERK_SIGN_IN_URL must be an http(s) URL");
  if (vars.publishableKey !== undefined && frontendApiOf(vars.publishableKey) === null)
    problems.push(
      "CLERK_PUBLISHABLE_KEY is not a Clerk publishable key (pk_test_... or pk_live_...)",
    );
  if (vars.clerkJsUrl !== undefined && !isHttpUrl(vars.clerkJsUrl))
    problems.push("CLERK_JS_URL must be an http(s) URL");
  return problems;
}

/** The settings, from variables viewerSettingsProblems() found nothing wrong with. */
export function viewerSettings(vars: ViewerVars): ViewerSettings {
  const frontendApi = vars.publishableKey === undefined ? null : frontendApiOf(vars.publishableKey);
  return {
    signInUrl: vars.signInUrl === undefined ? null : new URL(vars.signInUrl).href,
    publishableKey: frontendApi === null ? null : (vars.publishableKey ?? null),
    frontendApi,
    clerkJsUrl:
      frontendApi === null
        ? null
        : vars.clerkJsUrl !== undefined
          ? new URL(vars.clerkJsUrl).href
          : `https://${frontendApi}/npm/@clerk/clerk-js@5/dist/clerk.browser.js`,
  };
}
