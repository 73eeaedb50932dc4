import { isTerminalStatus, type JobRecord, parseJobRecord, type TerminalStatus } from "./job.ts";
import {
  cancelKey,
  jobKey,
  leaseKey,
  logStreamKey,
  QUEUED_JOBS_KEY,
  RUNNING_JOBS_KEY,
  UNARCHIVED_JOBS_KEY,
} from "./keys.ts";

/**
 * A job's state changes as Redis scripts, each atomic and safe to send again when its answer
 * was lost: the claim, the lease heartbeat and the end. The runner and the Worker both end jobs
 * (the sweep fails lost ones), and a status read then written in two requests lets both win;
 * in one script the first end decides and the other sees it. Each script is one Redis command.
 */

// A record whose status is terminal, in Lua; a record that is not JSON counts as not ended.
const LUA_ENDED = `
local function ended(raw)
  if not raw then return false end
  local ok, record = pcall(cjson.decode, raw)
  return ok and type(record) == "table" and
    (record.status == "ready" or record.status == "failed" or record.status == "cancelled")
end
`;

/**
 * Claims a queued job for one run: takes the lease and marks the job running in one step.
 * KEYS: lease, job, running set, queued set. ARGV: token, lease ms, started_at, job id, now
 * (ms), the record to use when none is stored. Returns {"claimed", record} (also when the
 * lease already holds this token: a retry whose first answer was lost), {"taken", holder} or
 * {"status", status} for a job that is not queued.
 */
export const CLAIM_JOB_LUA = `${LUA_ENDED}
local holder = redis.call("GET", KEYS[1])
if holder == ARGV[1] then return {"claimed", redis.call("GET", KEYS[2]) or ARGV[6]} end
if holder then return {"taken", holder} end
local raw = redis.call("GET", KEYS[2]) or ARGV[6]
local ok, record = pcall(cjson.decode, raw)
if not ok or type(record) ~= "table" then return {"status", "unreadable"} end
if record.status ~= "queued" then return {"status", tostring(record.status)} end
record.status = "running"
record.started_at = ARGV[3]
local updated = cjson.encode(record)
redis.call("SET", KEYS[2], updated)
redis.call("SET", KEYS[1], ARGV[1], "PX", ARGV[2])
redis.call("ZADD", KEYS[3], ARGV[5], ARGV[4])
redis.call("ZREM", KEYS[4], ARGV[4])
return {"claimed", updated}
`;

/**
 * The running job's heartbeat. Refreshes the lease this token holds, re-takes it when it
 * lapsed (a Redis stall longer than the lease) and nobody else took it, and re-creates the job
 * record when Redis lost it. KEYS: lease, job, running set. ARGV: token, lease ms, the
 * runner's copy of the record, job id, now (ms). Returns {lease, record}: lease is "held",
 * "retaken", "taken" (another holder) or "ended" (the job ended elsewhere, e.g. the sweep);
 * record is "kept" or "restored"; cancel is the cancel request's JSON (`cancelKey`), or "".
 * KEYS also: the cancel request.
 */
export const REFRESH_LEASE_LUA = `${LUA_ENDED}
local holder = redis.call("GET", KEYS[1])
if holder and holder ~= ARGV[1] then return {"taken", "kept", ""} end
local raw = redis.call("GET", KEYS[2])
if ended(raw) then return {"ended", "kept", ""} end
redis.call("SET", KEYS[1], ARGV[1], "PX", ARGV[2])
local record = "kept"
if not raw then
  redis.call("SET", KEYS[2], ARGV[3])
  redis.call("ZADD", KEYS[3], ARGV[5], ARGV[4])
  record = "restored"
end
return {holder and "held" or "retaken", record, redis.call("GET", KEYS[4]) or ""}
`;

/**
 * The running job's record with its steps so far, written at each step's start and end (one
 * command per step, never per line). Only by the lease's holder and only while the job has not
 * ended, so a late update never undoes an end. KEYS: lease, job. ARGV: token, the record.
 * Returns "updated", "taken" (another holder or none) or "ended".
 */
export const UPDATE_RUNNING_RECORD_LUA = `${LUA_ENDED}
if redis.call("GET", KEYS[1]) ~= ARGV[1] then return "taken" end
if ended(redis.call("GET", KEYS[2])) then return "ended" end
redis.call("SET", KEYS[2], ARGV[2])
return "updated"
`;

export function updateRunningRecordKeys(jobId: string): string[] {
  return [leaseKey(jobId), jobKey(jobId)];
}

/**
 * Ends a job once: appends the terminal entry and records the final status together, unless
 * the job already ended. KEYS: job, stream, lease, running set, queued set, unarchived set.
 * ARGV: entry id (the runner's, or "*"), the final record, job id, now (ms), stream TTL (s),
 * the record this end expects to replace ("" for any that has not ended), then the entry's
 * fields as name, value pairs. Returns {"ended", status} when this call (or an earlier attempt
 * of it, whose answer was lost) ended the job, {"already", status} when another end came
 * first, {"changed", ""} when the record is not the one expected.
 */
export const END_JOB_LUA = `${LUA_ENDED}
local raw = redis.call("GET", KEYS[1])
if raw == ARGV[2] then return {"ended", cjson.decode(raw).status} end
if ended(raw) then return {"already", cjson.decode(raw).status} end
if ARGV[6] ~= "" and raw ~= ARGV[6] then return {"changed", ""} end
local fields = {}
for i = 7, #ARGV do fields[#fields + 1] = ARGV[i] end
redis.call("XADD", KEYS[2], ARGV[1], unpack(fields))
redis.call("EXPIRE", KEYS[2], ARGV[5])
redis.call("SET", KEYS[1], ARGV[2])
redis.call("DEL", KEYS[3])
redis.call("ZREM", KEYS[4], ARGV[3])
redis.call("ZREM", KEYS[5], ARGV[3])
redis.call("ZADD", KEYS[6], ARGV[4], ARGV[3])
return {"ended", cjson.decode(ARGV[2]).status}
`;

export type ClaimOutcome =
  | { readonly kind: "claimed"; readonly job: JobRecord }
  | { readonly kind: "taken"; readonly holder: string }
  | { readonly kind: "status"; readonly status: string };

export type LeaseState = "held" | "retaken" | "taken" | "ended";
export interface RefreshOutcome {
  readonly lease: LeaseState;
  readonly recordRestored: boolean;
  /** Who asked to cancel the job, when someone did. */
  readonly cancelledBy: string | null;
}

/** A cancel request as stored at `cancelKey` and sent to the runner. */
export interface CancelRequest {
  /** The user who cancelled (their Clerk user id). */
  readonly by: string;
  readonly at: string;
}

export function parseCancelRequest(text: string): CancelRequest | null {
  try {
    const value: unknown = JSON.parse(text);
    if (typeof value !== "object" || value === null) return null;
    const { by, at } = value as Record<string, unknown>;
    return typeof by === "string" && by !== "" && typeof at === "string" ? { by, at } : null;
  } catch {
    return null;
  }
}

export type EndOutcome =
  | { readonly kind: "ended"; readonly status: TerminalStatus }
  | { readonly kind: "already"; readonly status: TerminalStatus }
  | { readonly kind: "changed" };

export function claimKeys(jobId: string): string[] {
  return [leaseKey(jobId), jobKey(jobId), RUNNING_JOBS_KEY, QUEUED_JOBS_KEY];
}

export function refreshKeys(jobId: string): string[] {
  return [leaseKey(jobId), jobKey(jobId), RUNNING_JOBS_KEY, cancelKey(jobId)];
}

export function endKeys(jobId: string): string[] {
  return [
    jobKey(jobId),
    logStreamKey(jobId),
    leaseKey(jobId),
    RUNNING_JOBS_KEY,
    QUEUED_JOBS_KEY,
    UNARCHIVED_JOBS_KEY,
  ];
}

export interface EndArgs {
  readonly entryId: string;
  readonly finished: JobRecord;
  readonly now: number;
  readonly ttlSeconds: number;
  /** The record's exact stored text this end replaces; null for any job that has not ended. */
  readonly expected: string | null;
  readonly fields: Record<string, string>;
}

export function endArgs(args: EndArgs): string[] {
  return [
    args.entryId,
    JSON.stringify(args.finished),
    args.finished.id,
    String(args.now),
    String(args.ttlSeconds),
    args.expected ?? "",
    ...Object.entries(args.fields).flat(),
  ];
}

function pair(reply: unknown): [string, string] {
  if (!Array.isArray(reply) || typeof reply[0] !== "string")
    throw new TypeError(`unexpected script reply ${JSON.stringify(reply)?.slice(0, 200)}`);
  return [reply[0], typeof reply[1] === "string" ? reply[1] : ""];
}

export function parseClaimReply(reply: unknown): ClaimOutcome {
  const [kind, value] = pair(reply);
  if (kind === "claimed") return { kind, job: parseJobRecord(value) };
  if (kind === "taken") return { kind, holder: value };
  return { kind: "status", status: value };
}

export function parseRefreshReply(reply: unknown): RefreshOutcome {
  const [lease, record] = pair(reply);
  if (lease !== "held" && lease !== "retaken" && lease !== "taken" && lease !== "ended")
    throw new TypeError(`unexpected lease state ${lease}`);
  const cancel = Array.isArray(reply) && typeof reply[2] === "string" ? reply[2] : "";
  return {
    lease,
    recordRestored: record === "restored",
    cancelledBy: cancel === "" ? null : (parseCancelRequest(cancel)?.by ?? null),
  };
}

export function parseEndReply(reply: unknown): EndOutcome {
  const [kind, status] = pair(reply);
  if (kind === "changed") return { kind };
  if ((kind === "ended" || kind === "already") && isTerminalStatus(status)) return { kind, status };
  throw new TypeError(`unexpected end reply ${kind} ${status}`);
}
