// The real Worker in local workerd for a bench that plays the runner itself (bench:ingest,
// bench:fanout): against the bench's Upstash bridge, with the runner's token and a development
// stand-in for Clerk's key, so the bench signs its viewers' session tokens.
import type { JobRecord } from "../src/shared/job.ts";
import { jobKey } from "../src/shared/keys.ts";
import { createDevSigner, type DevSigner } from "../tools/dev/dev-signer.ts";
import { startWorkerd, type WorkerdHandle } from "../tools/dev/workerd.ts";
import type { UpstashBridge } from "../tools/upstash-bridge/bridge.ts";

export interface BenchWorkerOptions {
  /** Names the bench in the signer's key id and issuer. */
  readonly bench: string;
  readonly bridge: Pick<UpstashBridge, "url" | "token">;
  readonly runnerToken: string;
  /** Vars over wrangler.toml's (say a larger viewer cap). */
  readonly vars?: Readonly<Record<string, string>>;
}

export async function startBenchWorker(
  options: BenchWorkerOptions,
): Promise<{ worker: WorkerdHandle; signer: DevSigner }> {
  const signer = createDevSigner({
    kid: `ins_${options.bench}_bench`,
    issuer: `https://clerk.${options.bench}.bench`,
  });
  const worker = await startWorkerd({
    configPath: "wrangler.toml",
    readyTimeoutMs: 60_000,
    bindings: {
      UPSTASH_REDIS_REST_URL: options.bridge.url,
      UPSTASH_REDIS_REST_TOKEN: options.bridge.token,
      RUNNER_TOKEN: options.runnerToken,
      // wrangler.toml has no RUNNER_URL (DEPLOY.md) and the Worker's config requires one; these
      // benches write streams themselves and start no job, so nothing listens there.
      RUNNER_URL: "http://127.0.0.1:9",
      CLERK_JWT_KEY: signer.jwtKey,
      // .dev.vars may set one; the bench's tokens carry none, so azp is not checked.
      CLERK_AUTHORIZED_PARTIES: "",
      ...options.vars,
    },
  });
  return { worker, signer };
}

/**
 * Writes the record of a job that a runner has started, as the Worker keeps it: `running`,
 * owned by `owner`, created and started now. The bench then writes the job's stream itself.
 */
export async function putRunningJob(
  redis: { set(key: string, value: string): Promise<unknown> },
  jobId: string,
  owner: string,
): Promise<void> {
  const now = new Date().toISOString();
  const job: JobRecord = {
    id: jobId,
    owner,
    status: "running",
    created_at: now,
    started_at: now,
    finished_at: null,
  };
  await redis.set(jobKey(jobId), JSON.stringify(job));
}
