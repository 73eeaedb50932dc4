import { cloudflareTest } from "@cloudflare/vitest-plugin";
import { defineConfig } from "vitest/config";
import { TEST_RUNNER_TOKEN } from "./test/support/worker-global-setup.ts";

// Four projects: the runner's tests in Node, the Worker's inside workerd, attacks on the
// sandbox, and the viewer page in a real browser. test/shared runs in the first two, which is
// what keeps src/shared free of Node and Workers APIs. Those two start a real redis-server
// behind the Upstash bridge (test/support/global-setup.ts); the security and browser tests run
// the whole stack themselves.
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
            // workerd's verbose log off. With it on, every outbound fetch that fails at the
            // network (the down Redis of outage.test.ts, the unreachable Clerk of auth.test.ts)
            // prints "uncaught exception ... Network connection lost" with a stack, even when
            // the code awaits and handles that rejection. The pool installs its own log handler
            // that no config can extend (workers-sdk PR #14821 filters the TLS variant the same
            // way); the verbose switch is the one knob. What it keeps: console output, and a JS
            // rejection nobody handles, which vitest reports as an error that fails the run.
            verbose: false,
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
                RUNNER_TOKEN: TEST_RUNNER_TOKEN,
                JOB_SECRETS_KEY: inject<string>("jobSecretsKey"),
                // The runner service with a job loop the tests hold (test/support/test-runner-server.ts).
                RUNNER_URL: inject<string>("runnerUrl"),
                TEST_RUNNER_URL: inject<string>("runnerUrl"),
                // Small enough that heartbeats and the viewer cap are seen within a test.
                SSE_HEARTBEAT_MS: "300",
                MAX_VIEWERS_PER_JOB: "4",
                TAIL_ACTIVE_POLL_MS: "50",
                TAIL_IDLE_POLL_MAX_MS: "200",
                TAIL_SAFETY_POLL_MS: "1000",
                MAX_VIEWER_LAG_BYTES: "262144",
                // Paced fan-out from 3 viewers, so that the cap above does not keep it from tests.
                FAN_OUT_PACED_FROM: "2",
                // A lost runner's job fails at the first sweep here; sweep.test.ts sets a grace.
                LEASE_LAPSE_GRACE_MS: "0",
                STREAM_TICKET_SECRET: "test-stream-ticket-secret-0123456789abcdef",
                CORS_ORIGINS: "https://app.example.com,http://localhost:3000",
                // Off, as in production; test/worker/viewer.test.ts turns it on per request.
                DEV_SIGN_IN: "",
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
      {
        // Attacks on the isolated local sandbox, through the whole stack (tools/dev/stack.ts) and
        // the runner's own signals; the tests start their own stack.
        test: {
          name: "security",
          environment: "node",
          include: ["test/security/**/*.test.ts"],
          testTimeout: 120_000,
          hookTimeout: 180_000,
        },
      },
      {
        // Faults injected from outside the processes of the whole stack (tools/dev/stack.ts):
        // signals to redis-server and the runner, a TCP proxy between the runner and Redis.
        test: {
          name: "faults",
          environment: "node",
          include: ["test/faults/**/*.test.ts"],
          testTimeout: 300_000,
          hookTimeout: 180_000,
        },
      },
      {
        // The viewer page in Debian's chromium (playwright-core), against the whole system on
        // loopback (tools/dev/stack.ts): the tests start their own stack.
        test: {
          name: "browser",
          environment: "node",
          include: ["test/browser/**/*.test.ts"],
          testTimeout: 120_000,
          hookTimeout: 180_000,
        },
      },
    ],
  },
});
