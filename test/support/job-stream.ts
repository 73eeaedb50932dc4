import { evictDurableObject, runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import type { TailState } from "../../src/stream/tail.ts";

/**
 * Puts the job's Durable Object where `state` says its tail stands (as a long-idle or paced
 * object left it) and evicts it, so the next request meets a new instance that starts from it,
 * as after a deploy.
 */
export async function restartTailAt(jobId: string, state: TailState): Promise<void> {
  const stub = env.JOB_STREAM.getByName(jobId);
  await runInDurableObject(stub, (_instance, ctx) => ctx.storage.put("state", state));
  await evictDurableObject(stub);
}
