import { Redis } from "@upstash/redis";
import { logStreamKey } from "../../src/shared/keys.ts";
import type { Stack } from "../../tools/dev/stack.ts";
import {
  announcedLosses,
  checkSequence,
  type GroundTruthBuild,
  groundTruthStep,
  type SequenceReport,
} from "./ground-truth.ts";
import {
  followSlowly,
  followWithEventSource,
  jobStatus,
  type LogApi,
  readHistoryTexts,
  readLogsTxt,
  type ViewerResult,
} from "./log-channels.ts";

/** One build under one fault, and what every channel showed of it. */
export interface ScenarioOptions {
  readonly name: string;
  readonly build: GroundTruthBuild;
  /** Injected once the job runs and its first lines are in; resolves when the fault is over. */
  readonly fault?: (context: { readonly jobId: string }) => Promise<void>;
  /** Viewers besides the plain one: a reconnecting one (20 random reconnects) and a slow one. */
  readonly reconnectingViewer?: boolean;
  readonly slowViewerBytesPerSecond?: number;
  /** The runner was killed: only a prefix of the build ran. */
  readonly cutShort?: boolean;
  readonly timeoutMs?: number;
}

export interface ChannelReport extends SequenceReport {
  readonly channel: string;
  /** Lines a system line said were lost or dropped, in this channel. */
  readonly announced: number;
}

export interface ScenarioReport {
  readonly name: string;
  readonly jobId: string;
  readonly status: string;
  readonly viewerStatuses: readonly string[];
  readonly channels: readonly ChannelReport[];
}

async function waitFor<T>(
  what: string,
  probe: () => Promise<T | null | undefined | false>,
  timeoutMs: number,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const value = await probe().catch(() => null);
    if (value) return value;
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
  throw new Error(`timed out waiting for ${what}`);
}

/**
 * Runs a ground-truth build on the stack, injects the fault while it runs, follows it live with
 * real EventSource clients, then reads the history, `logs.txt` and (with Redis's copy of the
 * stream deleted) both again from the archive. Every channel is checked for missing,
 * duplicated and out-of-order lines.
 */
export async function runScenario(
  stack: Stack,
  api: LogApi,
  options: ScenarioOptions,
): Promise<ScenarioReport> {
  const timeoutMs = options.timeoutMs ?? 240_000;
  const created = await fetch(`${api.workerUrl}/api/jobs`, {
    method: "POST",
    headers: { Authorization: `Bearer ${api.token}`, "Content-Type": "application/json" },
    body: JSON.stringify({ steps: [groundTruthStep(options.build)] }),
  });
  if (created.status !== 201) throw new Error(`creating the job answered ${created.status}`);
  const jobId = ((await created.json()) as { id: string }).id;

  const viewers: Promise<ViewerResult & { readonly channel: string }>[] = [
    followWithEventSource(api, jobId, { timeoutMs }).then((r) => ({ ...r, channel: "sse" })),
  ];
  if (options.reconnectingViewer)
    viewers.push(
      followWithEventSource(api, jobId, { reconnects: 20, timeoutMs }).then((r) => ({
        ...r,
        channel: "sse-reconnecting",
      })),
    );
  if (options.slowViewerBytesPerSecond !== undefined)
    viewers.push(
      followSlowly(api, jobId, options.slowViewerBytesPerSecond, timeoutMs).then((r) => ({
        ...r,
        channel: "sse-slow",
      })),
    );

  await waitFor(
    "the build's first lines",
    async () => (await readHistoryTexts(api, jobId)).some((text) => text.startsWith("gt ")),
    60_000,
  );
  await options.fault?.({ jobId });
  const seen = await Promise.all(viewers);
  const archived = await waitFor(
    "the archive",
    async () => {
      const job = await jobStatus(api, jobId);
      return job.archived_at ? job : null;
    },
    timeoutMs,
  );
  const channels: { channel: string; texts: readonly string[] }[] = seen.map((viewer) => ({
    channel: viewer.channel,
    texts: viewer.texts,
  }));
  channels.push({ channel: "history", texts: await readHistoryTexts(api, jobId) });
  channels.push({ channel: "logs.txt", texts: await readLogsTxt(api, jobId) });
  // Redis's copy gone (as after its 24 hours): the same routes now read the archive.
  const redis = new Redis({ url: stack.bridge.url, token: stack.bridge.token });
  await redis.del(logStreamKey(jobId));
  channels.push({ channel: "archive (history)", texts: await readHistoryTexts(api, jobId) });
  channels.push({ channel: "archive (logs.txt)", texts: await readLogsTxt(api, jobId) });

  const sequenceOptions = options.cutShort ? { prefixOnly: true } : {};
  return {
    name: options.name,
    jobId,
    status: archived.status,
    viewerStatuses: seen.map((viewer) => viewer.status),
    channels: channels.map(({ channel, texts }) => ({
      channel,
      announced: announcedLosses(texts),
      ...checkSequence(texts, options.build.lines, sequenceOptions),
    })),
  };
}

/** One line per channel, for the suite's output. */
export function formatReport(report: ScenarioReport): string {
  const rows = report.channels.map(
    (c) =>
      `  ${c.channel.padEnd(20)} seen=${c.seen} missing=${c.missing} duplicated=${c.duplicated} out_of_order=${c.outOfOrder} announced_lost=${c.announced}${c.firstMissing.length > 0 ? ` first_missing=${c.firstMissing.join(",")}` : ""}`,
  );
  return [`${report.name}: status=${report.status} (${report.jobId})`, ...rows].join("\n");
}
