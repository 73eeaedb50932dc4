// A development stand-in for Clerk's instance key: the Worker verifies with the public half
// (CLERK_JWT_KEY, networkless, as with Clerk's PEM key) and tools sign session tokens with the
// private half. For local runs, tests and benchmarks only.
import { createSign, generateKeyPairSync } from "node:crypto";

export interface DevSigner {
  /** The public key as SPKI PEM, for CLERK_JWT_KEY. */
  readonly jwtKey: string;
  /** An RS256 session token shaped like Clerk's, for `userId`, valid for `ttlSeconds`. */
  sign(userId: string, ttlSeconds?: number): string;
}

const base64url = (data: string | Buffer): string => Buffer.from(data).toString("base64url");

export function createDevSigner(
  options: { readonly kid?: string; readonly issuer?: string } = {},
): DevSigner {
  const { publicKey, privateKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
  const kid = options.kid ?? "dev";
  const issuer = options.issuer ?? "https://clerk.dev.local";
  return {
    jwtKey: publicKey.export({ type: "spki", format: "pem" }).toString(),
    sign(userId, ttlSeconds = 3600) {
      const now = Math.floor(Date.now() / 1000);
      const header = base64url(JSON.stringify({ alg: "RS256", typ: "JWT", kid }));
      const payload = base64url(
        JSON.stringify({
          sub: userId,
          sid: `sess_${userId}`,
          iat: now,
          nbf: now - 5,
          exp: now + ttlSeconds,
          iss: issuer,
        }),
      );
      const signature = createSign("RSA-SHA256").update(`${header}.${payload}`).sign(privateKey);
      return `${header}.${payload}.${base64url(signature)}`;
    },
  };
}
