// Both sides of Redis for bench/fanout.ts that are not the Worker: the runner appending entries
// in its own format, and the seed-style baseline where every viewer polls the stream itself.
import type { Redis } from "@upstash/redis";
import {
  decodeStreamReply,
  encodeEndFields,
  encodeEntryFields,
  type LogRecord,
} from "../src/shared/entry.ts";
import type { TerminalStatus } from "../src/shared/job.ts";
import { logStreamKey } from "../src/shared/keys.ts";
import type { LivePusher } from "../worker-build-runner/live-push.ts";
import type { RedisLogWriter } from "../worker-build-runner/redis-writer.ts";
import type { DeliveryLog } from "./fanout-lines.ts";
import { lineText, nowMs, parseLineText } from "./fanout-lines.ts";

const sleep = (ms: number): Promise<void> =>
  new Promise((resolve) => setTimeout(resolve, Math.max(0, ms)));

export interface AppendPlan {
  readonly entries: number;
  readonly linesPerEntry: number;
  /** Time between the starts of two appends. */
  readonly intervalMs: number;
}

export interface AppendResult {
  /** Entries appended: the plan's, unless the appender gave up (overloaded). */
  readonly entries: number;
  readonly lines: number;
  /** XADD commands sent (one per entry): the writer's share of the bridge's count. */
  readonly commands: number;
  readonly startedAt: number;
  readonly endedAt: number;
  /** How far behind its schedule the latest append started. */
  readonly maxLateMs: number;
  /** True when it stopped early because it fell more than `giveUpLateMs` behind. */
  readonly overloaded: boolean;
}

export interface AppendOptions {
  /** Runs after each append, not awaited (the runner's wake call, in some modes). */
  readonly afterAppend?: (appendedAt: number) => void;
  /** Stop appending once this far behind schedule: this machine, not the system, is the limit then. */
  readonly giveUpLateMs: number;
}

type Paced = Omit<AppendResult, "commands" | "endedAt">;

/**
 * Runs plans on their schedule: each entry's lines (numbered on from the last entry's, across
 * runs) stamped with the time it starts, handed to `append`, then `afterAppend`. Gives up once
 * more than `giveUpLateMs` behind.
 */
function pacer(): (
  plan: AppendPlan,
  options: AppendOptions,
  append: (records: LogRecord[]) => unknown,
) => Promise<Paced> {
  let nextLine = 0;
  return async (plan, options, append) => {
    const startedAt = nowMs();
    let maxLateMs = 0;
    let entries = 0;
    let overloaded = false;
    for (; entries < plan.entries; entries++) {
      const due = startedAt + entries * plan.intervalMs;
      await sleep(due - nowMs());
      const at = nowMs();
      maxLateMs = Math.max(maxLateMs, at - due);
      if (at - due > options.giveUpLateMs) {
        overloaded = true;
        break;
      }
      const records: LogRecord[] = [];
      for (let i = 0; i < plan.linesPerEntry; i++) {
        records.push({
          ts: new Date(at).toISOString(),
          source: "stdout",
          phase: "build",
          text: lineText(nextLine++, at),
        });
      }
      await append(records);
      options.afterAppend?.(at);
    }
    return { entries, lines: entries * plan.linesPerEntry, startedAt, maxLateMs, overloaded };
  };
}

/** The result of a paced run that sent `commands`, ending now. */
function ended(paced: Paced, commands: number): AppendResult {
  const { entries, lines, startedAt, maxLateMs, overloaded } = paced;
  return { entries, lines, commands, startedAt, endedAt: nowMs(), maxLateMs, overloaded };
}

/**
 * Appends as the runner does: explicit increasing ids `<ms>-<seq>` (so a retried request cannot
 * append twice), several lines per entry, each line stamped with its append time.
 */
export function streamAppender(redis: Redis, jobId: string) {
  const key = logStreamKey(jobId);
  let lastMs = 0;
  let seq = 0;
  const nextId = (): string => {
    const ms = Date.now();
    if (ms > lastMs) {
      lastMs = ms;
      seq = 0;
    } else {
      seq++;
    }
    return `${lastMs}-${seq}`;
  };
  const pace = pacer();
  return {
    async run(plan: AppendPlan, options: AppendOptions): Promise<AppendResult> {
      const paced = await pace(plan, options, (records) =>
        redis.xadd(key, nextId(), encodeEntryFields(records)),
      );
      return ended(paced, paced.entries);
    },
    async end(status: TerminalStatus): Promise<void> {
      await redis.xadd(key, nextId(), encodeEndFields(status));
    },
  };
}

/**
 * Appends through the runner's own writer (adaptive batching, its ids, its requests) with its
 * pusher attached: the push path as production runs it. `commands` is what the writer sent.
 */
export function writerAppender(writer: RedisLogWriter, pusher: LivePusher) {
  const pace = pacer();
  return {
    async run(plan: AppendPlan, options: AppendOptions): Promise<AppendResult> {
      const commandsBefore = writer.stats.commands;
      const paced = await pace(plan, options, (records) => {
        for (const record of records) writer.append(record);
      });
      await writer.drain();
      return ended(paced, writer.stats.commands - commandsBefore);
    },
    async end(status: TerminalStatus): Promise<void> {
      await writer.end(status);
      await pusher.close();
    },
  };
}

export interface PollersOptions {
  readonly redis: Redis;
  readonly jobId: string;
  readonly count: number;
  readonly intervalMs: number;
  readonly log: DeliveryLog;
  /** A poller gives up after this many polls whatever happens (a bound, not the usual stop). */
  readonly maxPolls: number;
}

export interface Pollers {
  /** Stops every poller after its current poll; resolves when all have. */
  stop(): Promise<void>;
  errors(): number;
}

// Entries per XRANGE, as the Durable Object reads.
const ENTRIES_PER_READ = 256;

/**
 * The seed's design: each viewer's SSE handler polls Redis itself, XRANGE after its own last id
 * every `intervalMs` (then waits again), through @upstash/redis. Starts staggered over one
 * interval, as viewers that arrived at different times would be.
 */
export function startPollers(options: PollersOptions): Pollers {
  const key = logStreamKey(options.jobId);
  let stopping = false;
  let errors = 0;
  const poller = async (reader: number): Promise<void> => {
    await sleep((reader / options.count) * options.intervalMs);
    let lastId = "0-0";
    for (let polls = 0; !stopping && polls < options.maxPolls; polls++) {
      try {
        const entries = decodeStreamReply(
          await options.redis.xrange(key, `(${lastId}`, "+", ENTRIES_PER_READ),
        );
        const receivedAt = nowMs();
        for (const entry of entries) {
          for (const line of entry.lines) {
            const stamped = parseLineText(line.text);
            if (stamped !== null) options.log.receive(reader, stamped, receivedAt);
          }
          lastId = entry.id;
        }
      } catch {
        errors++;
      }
      await sleep(options.intervalMs);
    }
  };
  const running = Promise.all(Array.from({ length: options.count }, (_, reader) => poller(reader)));
  return {
    async stop() {
      stopping = true;
      await running;
    },
    errors: () => errors,
  };
}
