import { DurableObject } from "cloudflare:workers";
import { workerConfig } from "../config.ts";
import { createRedis } from "../redis.ts";
import { armNoLaterThan, repairAlarm } from "../shared/alarm.ts";
import { exponentialBackoff } from "../shared/backoff.ts";
import { isTerminalStatus, parseJobRecord } from "../shared/job.ts";
import type { SealedRunRequest } from "../shared/job-spec.ts";
import { jobKey } from "../shared/keys.ts";
import { log } from "../shared/log.ts";
import { runnerAuthorization } from "../shared/runner-token.ts";
import { failJob } from "./lifecycle.ts";

/** How the dispatcher orders jobs waiting for a runner slot. */
export type DispatchOrder = "fair" | "fifo";

export interface DispatchSettings {
  /** `fair` (default): round-robin between users; `fifo`: first come, first served. */
  readonly order: DispatchOrder;
  /** Jobs one user may have handed to runners and not ended; the rest wait. */
  readonly maxRunningPerUser: number;
  /** How soon a busy runner (503) is asked again; an ended job asks at once. */
  readonly busyRetryMs: number;
}

export interface DispatcherStatus {
  readonly pending: number;
  readonly started: number;
}

/** The one dispatcher every Worker hands jobs to. */
export function jobDispatcher(env: Env): DurableObjectStub<JobDispatcher> {
  return env.JOB_DISPATCHER.getByName("runners");
}

type HandOver =
  | { readonly kind: "accepted" }
  | { readonly kind: "busy" }
  | { readonly kind: "unreachable"; readonly detail: string }
  | { readonly kind: "refused"; readonly detail: string };

interface PendingRow extends Record<string, SqlStorageValue> {
  seq: number;
  job_id: string;
  owner: string;
  request: string;
}

// A started job whose end was not reported (a runner without WORKER_URL, a lost notification)
// is looked up in Redis after this long; a pending one, in case the sweep failed it.
const RECONCILE_AFTER_MS = 30_000;
const RECONCILE_EVERY_MS = 15_000;
const RECONCILE_BATCH = 100;
const unreachableBackoff = exponentialBackoff({ initial: 1_000, max: 60_000 });
const HAND_OVER_TIMEOUT_MS = 10_000;

/**
 * Hands queued jobs to the runner service as slots free up, fairly between users: the next
 * job is the oldest one of the user who was served least recently, so one user's backlog holds
 * another user's job back by at most the one start already under way. A user with
 * `maxRunningPerUser` jobs started and not ended waits. The Queue delivers each job here once
 * (the consumer acks after `submit`); the object keeps it in its SQLite storage until a runner
 * takes it. Its alarm does all the handing over, so two hand-overs never race: `submit` and
 * `ended` only move the alarm to now, and a busy runner (503) is asked again after
 * `busyRetryMs`, or at once when a job ends. This replaces the Queue's retry with backoff,
 * which left runner slots idle while jobs waited out their delays.
 */
export class JobDispatcher extends DurableObject<Env> {
  private readonly sql: SqlStorage;
  // Jobs that ended while their hand-over was under way: their 202 must not mark them started.
  private readonly endedDuringHandOver = new Set<string>();
  private unreachableAttempts = 0;
  private lastReconcile = 0;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    this.sql = ctx.storage.sql;
    this.sql.exec(`
      CREATE TABLE IF NOT EXISTS pending (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        job_id TEXT NOT NULL UNIQUE,
        owner TEXT NOT NULL,
        request TEXT NOT NULL,
        queued_at INTEGER NOT NULL
      );
      CREATE INDEX IF NOT EXISTS pending_by_owner ON pending (owner, seq);
      CREATE TABLE IF NOT EXISTS started (
        job_id TEXT PRIMARY KEY,
        owner TEXT NOT NULL,
        started_at INTEGER NOT NULL,
        ended_at INTEGER
      );
      CREATE INDEX IF NOT EXISTS started_by_owner ON started (owner, ended_at);
      CREATE TABLE IF NOT EXISTS served (owner TEXT PRIMARY KEY, turn INTEGER NOT NULL);
    `);
  }

  /**
   * Takes a job from the Queue. A job it holds or handed over in the last day (the Queue
   * delivers at least once) is not added again.
   */
  async submit(request: SealedRunRequest): Promise<void> {
    const known = this.sql.exec("SELECT 1 FROM started WHERE job_id = ?", request.job_id).toArray();
    if (known.length === 0) {
      this.sql.exec(
        "INSERT OR IGNORE INTO pending (job_id, owner, request, queued_at) VALUES (?, ?, ?, ?)",
        request.job_id,
        request.owner,
        JSON.stringify(request),
        Date.now(),
      );
    }
    await this.armAt(Date.now());
  }

  /** A job ended (the runner said so, or it was failed): its owner's slot is free. */
  async ended(jobId: string): Promise<void> {
    this.endedDuringHandOver.add(jobId);
    this.sql.exec("UPDATE started SET ended_at = ? WHERE job_id = ?", Date.now(), jobId);
    this.sql.exec("DELETE FROM pending WHERE job_id = ?", jobId);
    await this.armAt(Date.now());
  }

  /**
   * The sweep's check, every minute, that dispatching has not stopped: only submit() and
   * ended() set the alarm otherwise, so an alarm workerd lost (src/shared/alarm.ts) while jobs
   * wait would hold them until the next job is created or ends. A backoff still to come stays.
   */
  async poke(): Promise<void> {
    const pending = this.sql.exec("SELECT 1 FROM pending LIMIT 1").toArray().length > 0;
    await repairAlarm(this.ctx.storage, pending);
  }

  /** Whether the job waits here for a runner, was handed to one, or is unknown here. */
  holds(jobId: string): "pending" | "started" | null {
    if (this.sql.exec("SELECT 1 FROM pending WHERE job_id = ?", jobId).toArray().length > 0)
      return "pending";
    const started = this.sql
      .exec<{ ended_at: number | null }>("SELECT ended_at FROM started WHERE job_id = ?", jobId)
      .toArray()[0];
    if (started !== undefined && started.ended_at === null) return "started";
    return null;
  }

  /**
   * Of these jobs, the ones waiting here only because their owner has as many jobs started as
   * allowed: their wait is the owner's own backlog, not a system that cannot start them, so the
   * sweep's bound on time in the queue does not apply to it.
   */
  waitingOnOwner(jobIds: readonly string[]): string[] {
    const { maxRunningPerUser } = workerConfig(this.env).dispatch;
    return jobIds.filter(
      (jobId) =>
        this.sql
          .exec(
            `SELECT 1 FROM pending p WHERE p.job_id = ? AND
               (SELECT COUNT(*) FROM started s WHERE s.owner = p.owner AND s.ended_at IS NULL) >= ?`,
            jobId,
            maxRunningPerUser,
          )
          .toArray().length > 0,
    );
  }

  status(): DispatcherStatus {
    const count = (query: string) => Number(this.sql.exec(query).one().n);
    return {
      pending: count("SELECT COUNT(*) AS n FROM pending"),
      started: count("SELECT COUNT(*) AS n FROM started WHERE ended_at IS NULL"),
    };
  }

  override async alarm(): Promise<void> {
    const settings = workerConfig(this.env).dispatch;
    try {
      await this.reconcile();
    } catch (error) {
      log.error("JobDispatcher: reconciling with Redis failed; next alarm retries", error);
    }
    for (;;) {
      const next = this.nextJob(settings);
      if (next === null) break;
      this.endedDuringHandOver.clear();
      const outcome = await this.handOver(next);
      if (outcome.kind === "accepted") {
        this.unreachableAttempts = 0;
        this.markStarted(next);
        continue;
      }
      if (outcome.kind === "refused") {
        this.sql.exec("DELETE FROM pending WHERE seq = ?", next.seq);
        await failJob(
          createRedis(this.env),
          next.job_id,
          `No build runner took this job (${outcome.detail}).`,
        );
        continue;
      }
      if (outcome.kind === "busy") {
        this.unreachableAttempts = 0;
        await this.armAt(Date.now() + settings.busyRetryMs);
      } else {
        this.unreachableAttempts += 1;
        const delay = unreachableBackoff(this.unreachableAttempts);
        log.warn(
          `JobDispatcher: ${outcome.detail}; ${this.status().pending} jobs wait, retrying in ${delay} ms`,
        );
        await this.armAt(Date.now() + delay);
      }
      return;
    }
    // Nothing to hand over now. Jobs held back by their owner's limit wait for an end; look
    // for ends nobody reported once in a while.
    const { pending, started } = this.status();
    if (pending > 0 || started > 0) await this.armAt(Date.now() + RECONCILE_EVERY_MS);
  }

  private nextJob(settings: DispatchSettings): PendingRow | null {
    // The oldest job of each user under their limit; of those, the user with the fewest jobs
    // running, then the one served least recently (never: first), then the oldest job.
    const order =
      settings.order === "fair"
        ? "running, COALESCE((SELECT turn FROM served v WHERE v.owner = p.owner), 0), p.seq"
        : "p.seq";
    const rows = this.sql
      .exec<PendingRow>(
        `SELECT p.seq, p.job_id, p.owner, p.request,
           (SELECT COUNT(*) FROM started s WHERE s.owner = p.owner AND s.ended_at IS NULL)
             AS running
         FROM pending p
         WHERE p.seq = (SELECT MIN(q.seq) FROM pending q WHERE q.owner = p.owner)
           AND running < ?
         ORDER BY ${order} LIMIT 1`,
        settings.maxRunningPerUser,
      )
      .toArray();
    return rows[0] ?? null;
  }

  private markStarted(job: PendingRow): void {
    this.sql.exec("DELETE FROM pending WHERE seq = ?", job.seq);
    const now = Date.now();
    this.sql.exec(
      "INSERT OR REPLACE INTO started (job_id, owner, started_at, ended_at) VALUES (?, ?, ?, ?)",
      job.job_id,
      job.owner,
      now,
      this.endedDuringHandOver.has(job.job_id) ? now : null,
    );
    this.sql.exec(
      "INSERT OR REPLACE INTO served (owner, turn) VALUES (?, (SELECT COALESCE(MAX(turn), 0) + 1 FROM served))",
      job.owner,
    );
    // A user with nothing waiting or running starts afresh: their next job comes first.
    this.sql.exec(
      `DELETE FROM served WHERE owner NOT IN
         (SELECT owner FROM pending UNION SELECT owner FROM started WHERE ended_at IS NULL)`,
    );
  }

  private async handOver(job: PendingRow): Promise<HandOver> {
    const { runner } = workerConfig(this.env);
    let response: Response;
    try {
      response = await fetch(new URL("/jobs", runner.url), {
        method: "POST",
        headers: {
          Authorization: runnerAuthorization(runner.token),
          "Content-Type": "application/json",
        },
        body: job.request,
        signal: AbortSignal.timeout(HAND_OVER_TIMEOUT_MS),
      });
    } catch (error) {
      return {
        kind: "unreachable",
        detail: `the runner could not be reached: ${error instanceof Error ? error.message : String(error)}`,
      };
    }
    if (response.status === 202 || response.status >= 500) {
      await response.body?.cancel();
      if (response.status === 202) return { kind: "accepted" };
      if (response.status === 503) return { kind: "busy" };
      return { kind: "unreachable", detail: `the runner answered ${response.status}` };
    }
    // The runner's error code says why (a JOB_SECRETS_KEY that differs: sealed_values_invalid).
    const body: unknown = await response.json().catch(() => null);
    const code =
      typeof body === "object" && body !== null && "error" in body
        ? String((body.error as { code?: unknown } | null)?.code ?? "")
        : "";
    return {
      kind: "refused",
      detail: `the runner answered ${response.status}${code === "" ? "" : ` ${code}`}`,
    };
  }

  /**
   * Drops started jobs that ended without a word to us, and waiting jobs that were failed
   * meanwhile (the sweep fails jobs queued too long): one pipelined read of their records.
   */
  private async reconcile(): Promise<void> {
    const now = Date.now();
    if (now - this.lastReconcile < RECONCILE_EVERY_MS) return;
    this.lastReconcile = now;
    const before = now - RECONCILE_AFTER_MS;
    // Ended jobs are kept a day, so a redelivery of their message is recognised.
    this.sql.exec("DELETE FROM started WHERE ended_at < ?", now - 86_400_000);
    const stale = [
      ...this.sql.exec<{ job_id: string }>(
        "SELECT job_id FROM started WHERE ended_at IS NULL AND started_at < ? LIMIT ?",
        before,
        RECONCILE_BATCH,
      ),
      ...this.sql.exec<{ job_id: string }>(
        "SELECT job_id FROM pending WHERE queued_at < ? ORDER BY seq LIMIT ?",
        before,
        RECONCILE_BATCH,
      ),
    ].map((row) => row.job_id);
    if (stale.length === 0) return;
    const redis = createRedis(this.env);
    const p = redis.pipeline();
    for (const jobId of stale) p.get<string>(jobKey(jobId));
    const records = await p.exec<(string | null)[]>();
    for (const [i, jobId] of stale.entries()) {
      const raw = records[i] ?? null;
      if (raw === null || isTerminalStatus(parseJobRecord(raw).status)) {
        this.sql.exec("UPDATE started SET ended_at = ? WHERE job_id = ?", now, jobId);
        this.sql.exec("DELETE FROM pending WHERE job_id = ?", jobId);
      }
    }
  }

  private async armAt(at: number): Promise<void> {
    await armNoLaterThan(this.ctx.storage, at);
  }
}
