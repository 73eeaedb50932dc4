import { cloudflareTest } from "@cloudflare/vitest-pool-workers";
import { defineConfig } from "vitest/config";

// Two projects: the runner's tests in Node, the Worker's inside workerd. test/shared runs in
// both, which is what keeps src/shared free of Node and Workers APIs. Both start a real
// redis-server behind the Upstash bridge (test/support/global-setup.ts).
export default defineConfig({
  test: {
    projects: [
      {
        test: {
          name: "runner",
          environment: "node",
          include: ["test/runner/**/*.test.ts", "test/shared/**/*.test.ts"],
          globalSetup: ["test/support/global-setup.ts"],
          testTimeout: 30_000,
          hookTimeout: 30_000,
        },
      },
      {
        plugins: [
          cloudflareTest(({ inject }) => ({
            wrangler: { configPath: "./wrangler.toml" },
            miniflare: {
              bindings: {
                UPSTASH_REDIS_REST_URL: inject<string>("upstashUrl"),
                UPSTASH_REDIS_REST_TOKEN: inject<string>("upstashToken"),
                CLERK_JWT_KEY: inject<string>("clerkJwtKey"),
                CLERK_AUTHORIZED_PARTIES: "http://localhost:3000,https://app.example.com",
                TEST_CLERK_SIGNING_JWK: inject<string>("clerkSigningJwk"),
                TEST_CLERK_API_URL: inject<string>("clerkApiUrl"),
                TEST_S3_ENDPOINT: inject<string>("s3Endpoint"),
                RUNNER_TOKEN: "test-runner-token",
                // Small enough that heartbeats and the viewer cap are seen within a test.
                SSE_HEARTBEAT_MS: "300",
                MAX_VIEWERS_PER_JOB: "4",
                TAIL_ACTIVE_POLL_MS: "50",
                TAIL_IDLE_POLL_MAX_MS: "200",
                MAX_VIEWER_LAG_BYTES: "262144",
              },
            },
          })),
        ],
        test: {
          name: "worker",
          include: ["test/worker/**/*.test.ts", "test/shared/**/*.test.ts"],
          globalSetup: ["test/support/worker-global-setup.ts"],
          testTimeout: 30_000,
          hookTimeout: 30_000,
        },
      },
    ],
  },
});
