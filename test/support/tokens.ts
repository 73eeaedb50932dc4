// Signs Clerk-like session JWTs for tests. Runs inside workerd (and typechecks under Node), so
// WebCrypto only: no Buffer, no node:crypto.

export interface SessionClaims {
  sub: string;
  sid: string;
  iat: number;
  nbf: number;
  exp: number;
  iss: string;
  azp: string;
  [claim: string]: unknown;
}

/** Claims to merge over the defaults; a claim set to `undefined` is left out of the token. */
export type ClaimOverrides = { [K in keyof SessionClaims]?: SessionClaims[K] | undefined };

export interface SignOptions {
  /** The `alg` header; the signature is RS256 whatever this says. Default "RS256". */
  readonly alg?: string;
  /** The `kid` header. Default "ins_test". */
  readonly kid?: string;
  /** Merged over the whole header last; `undefined` removes a field. */
  readonly header?: Readonly<Record<string, unknown>>;
  /** Signed as the payload instead of the claims, for tokens whose signature is all that is right. */
  readonly rawPayload?: string;
}

export interface TestSigner {
  sign(claims?: ClaimOverrides, options?: SignOptions): Promise<string>;
}

const rs256 = { name: "RSASSA-PKCS1-v1_5", hash: "SHA-256" } as const;

/** A unique Clerk-style user id, so each test can assert it got its own `sub` back. */
export function testUserId(): string {
  return `user_${crypto.randomUUID().replaceAll("-", "")}`;
}

/** Clerk session claims as Clerk issues them (nbf 10 s before iat), valid for the next 60 s. */
export function sessionClaims(overrides: ClaimOverrides = {}): Record<string, unknown> {
  const now = Math.floor(Date.now() / 1000);
  return {
    sub: testUserId(),
    sid: `sess_${crypto.randomUUID().replaceAll("-", "")}`,
    iat: now,
    nbf: now - 10,
    exp: now + 60,
    iss: "https://clerk.example.com",
    azp: "http://localhost:3000",
    v: 2,
    ...overrides,
  };
}

// Spelled out rather than the DOM's JsonWebKey and CryptoKey, which Node's types lack.
type SigningKey = Awaited<ReturnType<typeof crypto.subtle.importKey>>;
const privateRsaJwkFields = ["n", "e", "d", "p", "q", "dp", "dq", "qi"] as const;
type PrivateRsaJwk = { kty: "RSA" } & Record<(typeof privateRsaJwkFields)[number], string>;

/** Imports the private JWK (the JSON string global setup provides) and signs real RS256 JWTs. */
export async function createTestSigner(jwkJson: string): Promise<TestSigner> {
  const key = await crypto.subtle.importKey("jwk", parsePrivateRsaJwk(jwkJson), rs256, false, [
    "sign",
  ]);
  return { sign: (claims, options) => signWith(key, claims, options) };
}

function parsePrivateRsaJwk(json: string): PrivateRsaJwk {
  const value: unknown = JSON.parse(json);
  if (!isPrivateRsaJwk(value)) {
    throw new Error(
      "not an RSA private key as a JWK (test/support/worker-global-setup.ts provides one as clerkSigningJwk)",
    );
  }
  return value;
}

function isPrivateRsaJwk(value: unknown): value is PrivateRsaJwk {
  if (typeof value !== "object" || value === null) return false;
  const fields: Record<string, unknown> = { ...value };
  return (
    fields.kty === "RSA" && privateRsaJwkFields.every((field) => typeof fields[field] === "string")
  );
}

/** A token signed by a key pair generated on the spot, which no verifier trusts. */
export async function signWithFreshKey(
  claims: ClaimOverrides = {},
  options: SignOptions = {},
): Promise<string> {
  const pair = await crypto.subtle.generateKey(
    {
      name: rs256.name,
      hash: rs256.hash,
      modulusLength: 2048,
      publicExponent: new Uint8Array([1, 0, 1]),
    },
    false,
    ["sign", "verify"],
  );
  // Workers' types answer CryptoKey | CryptoKeyPair for every algorithm.
  if (!("privateKey" in pair)) throw new Error("RSASSA key generation gave no key pair");
  return signWith(pair.privateKey, claims, options);
}

/** An unsecured JWT (`alg: none`, empty signature), as in the classic algorithm-confusion attack. */
export function unsignedToken(claims: ClaimOverrides = {}): string {
  return `${encodeJson({ alg: "none", typ: "JWT" })}.${encodeJson(sessionClaims(claims))}.`;
}

/** The same token with claims in its payload changed and the original signature kept. */
export function tamperPayload(token: string, changes: ClaimOverrides): string {
  const [header, payload, signature] = token.split(".");
  if (header === undefined || payload === undefined || signature === undefined)
    throw new Error("not a JWT");
  const claims: unknown = JSON.parse(new TextDecoder().decode(base64UrlDecode(payload)));
  if (typeof claims !== "object" || claims === null)
    throw new Error("JWT payload is not an object");
  return `${header}.${encodeJson({ ...claims, ...changes })}.${signature}`;
}

/** Base64url of UTF-8 text, for hand-made malformed tokens. */
export function base64UrlText(text: string): string {
  return base64UrlEncode(new TextEncoder().encode(text));
}

async function signWith(
  key: SigningKey,
  claims: ClaimOverrides = {},
  options: SignOptions = {},
): Promise<string> {
  const header = {
    alg: options.alg ?? "RS256",
    typ: "JWT",
    kid: options.kid ?? "ins_test",
    ...options.header,
  };
  const payload =
    options.rawPayload === undefined
      ? encodeJson(sessionClaims(claims))
      : base64UrlText(options.rawPayload);
  const signingInput = `${encodeJson(header)}.${payload}`;
  const signature = await crypto.subtle.sign(rs256, key, new TextEncoder().encode(signingInput));
  return `${signingInput}.${base64UrlEncode(new Uint8Array(signature))}`;
}

// JSON.stringify leaves out `undefined` members, which is how an override removes a claim.
function encodeJson(value: object): string {
  return base64UrlText(JSON.stringify(value));
}

function base64UrlEncode(bytes: Uint8Array): string {
  let binary = "";
  for (const byte of bytes) binary += String.fromCharCode(byte);
  return btoa(binary).replaceAll("+", "-").replaceAll("/", "_").replace(/=+$/, "");
}

function base64UrlDecode(text: string): Uint8Array {
  const binary = atob(text.replaceAll("-", "+").replaceAll("_", "/"));
  return Uint8Array.from(binary, (char) => char.charCodeAt(0));
}
