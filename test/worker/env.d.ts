// Bindings only the tests have (vitest.config.ts passes them to the worker project), kept out of
// the production Env that `wrangler types` generates from wrangler.toml.
declare namespace Cloudflare {
  interface Env {
    /** The private JWK that signs test session tokens (its public half is CLERK_JWT_KEY). */
    TEST_CLERK_SIGNING_JWK: string;
    /** The local Clerk Backend API serving the JWKS (test/support/clerk-api-server.ts). */
    TEST_CLERK_API_URL: string;
    /** The S3-compatible server on loopback (test/support/s3-server.ts). */
    TEST_S3_ENDPOINT: string;
    /** A runner service on loopback for the dispatcher's tests (test/support/test-runner-server.ts). */
    TEST_RUNNER_URL: string;
  }
}
