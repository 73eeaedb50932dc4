import { evictDurableObject, runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import type { JobStream } from "../../src/stream/job-stream.ts";
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

/** What a test may wait for in the job's object: its open viewers and its tail's position. */
export interface JobStreamView {
  readonly viewers: number;
  readonly position: string | null;
}

/**
 * Runs the job's object's alarm (when one is armed) until `done` holds, instead of sleeping
 * for a guess of how long the object needs; throws after `steps` tries. Alarms that fire on
 * their own meanwhile do the same work; only what the object has is waited for.
 */
export async function stepAlarmsUntil(
  jobId: string,
  done: (view: JobStreamView) => boolean,
  steps = 5_000,
): Promise<JobStreamView> {
  const stub = env.JOB_STREAM.getByName(jobId);
  for (let step = 0; step < steps; step++) {
    const view = await runInDurableObject(stub, async (instance: JobStream, ctx) => ({
      // biome-ignore lint/complexity/useLiteralKeys: the viewers are private to the object; TypeScript lets a test read them by element access only
      viewers: instance["viewers"].size,
      position: (await ctx.storage.get<TailState>("state"))?.position ?? null,
    }));
    if (done(view)) return view;
    await runDurableObjectAlarm(stub);
  }
  throw new Error(`the job's object did not get there in ${steps} alarm steps`);
}
