import type { Redis } from "@upstash/redis/cloudflare";
import type { ArchiveStore } from "../log/archive-store.ts";
import { type JobRecord, type JobStatus, parseJobRecord } from "../shared/job.ts";
import { isValidJobId } from "../shared/keys.ts";
import { readArchivedRecord } from "./expiry.ts";

// A user's jobs, newest first, for GET /api/jobs. An index per owner, written when a job is
// created: a sorted set whose members all score 0 and read `<created ms, 15 digits>:<job id>`,
// so their byte order is their time order and a member is an exact, unique page cursor
// (ZREVRANGEBYLEX from just before it). A page is one EVAL: the range and every record's GET
// run in Redis, so a page costs one round trip and one billed command, however many jobs it
// shows, never a scan of the keyspace.

export const DEFAULT_LIST_LIMIT = 20;
export const MAX_LIST_LIMIT = 100;
/** The index keeps a user's newest jobs; older ones are still read by id. */
export const MAX_INDEXED_JOBS = 10_000;
/**
 * How long an index lives after its owner's last job was created. Records leave Redis
 * JOB_RECORD_TTL_SECONDS after their end (7 days by default) and are then read from the archive,
 * so an index outlives them; a year of silence and it goes.
 */
export const INDEX_TTL_SECONDS = 365 * 24 * 3600;
/** With a status filter, how many index members one page may look at before it answers. */
const SCAN_PER_LIMIT = 10;

export const LIST_CURSOR_PATTERN = /^\d{15}:[A-Za-z0-9][A-Za-z0-9_-]{0,63}$/;

/** The owner's index (Clerk user ids are `user_...`; anything else is still one key). */
export function ownerJobsKey(owner: string): string {
  return `owner:${owner}:jobs`;
}

export function indexMember(createdMs: number, jobId: string): string {
  return `${String(createdMs).padStart(15, "0")}:${jobId}`;
}

/** Indexes a new job, in the pipeline that writes its record (no round trip of its own). */
export function indexJob(
  pipeline: ReturnType<Redis["pipeline"]>,
  owner: string,
  createdMs: number,
  jobId: string,
): void {
  const key = ownerJobsKey(owner);
  pipeline.zadd(key, { score: 0, member: indexMember(createdMs, jobId) });
  // Rank 0 is the oldest member: all but the newest MAX_INDEXED_JOBS go.
  pipeline.zremrangebyrank(key, 0, -(MAX_INDEXED_JOBS + 1));
  pipeline.expire(key, INDEX_TTL_SECONDS);
}

// KEYS[1] the index; ARGV: the exclusive upper bound ("+" or "(<member>"), how many jobs to
// return, the status wanted ("" for any), how many members to look at at most. Answers
// [more (0/1), the last member looked at, then member, record pairs]; a record is false when it
// has left Redis (the Worker reads the archive's copy). Record keys are built in the script from
// the member (job ids are checked before they are indexed): Upstash runs a database on one
// shard, where undeclared keys are fine.
const LIST_SCRIPT = `
local members = redis.call("ZREVRANGEBYLEX", KEYS[1], ARGV[1], "-", "LIMIT", 0, tonumber(ARGV[4]) + 1)
local limit = tonumber(ARGV[2])
local wanted = ARGV[3]
local out = {0, ""}
local found = 0
for i, member in ipairs(members) do
  if found == limit or i > tonumber(ARGV[4]) then
    out[1] = 1
    break
  end
  out[2] = member
  local id = string.sub(member, 17)
  local record = redis.call("GET", "job:" .. id .. ":meta")
  if not record then
    out[#out + 1] = member
    out[#out + 1] = false
    found = found + 1
  elseif wanted == "" or cjson.decode(record).status == wanted then
    out[#out + 1] = member
    out[#out + 1] = record
    found = found + 1
  end
end
return out
`;

export interface JobListQuery {
  readonly owner: string;
  readonly status?: JobStatus;
  /** The page's exclusive start: the previous page's `next_cursor`. */
  readonly cursor?: string;
  readonly limit: number;
}

export interface JobListPage {
  readonly jobs: JobRecord[];
  /** Where the next page starts; null on the last page. */
  readonly nextCursor: string | null;
  /** Index members whose job is neither in Redis nor in the archive: the caller may drop them. */
  readonly stale: string[];
}

export async function listJobs(
  redis: Redis,
  archive: ArchiveStore,
  query: JobListQuery,
): Promise<JobListPage> {
  const scan = query.status === undefined ? query.limit : query.limit * SCAN_PER_LIMIT;
  const reply = (await redis.eval(
    LIST_SCRIPT,
    [ownerJobsKey(query.owner)],
    [
      query.cursor === undefined ? "+" : `(${query.cursor}`,
      String(query.limit),
      query.status ?? "",
      String(scan),
    ],
  )) as unknown[];
  const more = Number(reply[0]) === 1;
  const last = typeof reply[1] === "string" && reply[1] !== "" ? reply[1] : null;
  const jobs: JobRecord[] = [];
  const stale: string[] = [];
  for (let i = 2; i + 1 < reply.length; i += 2) {
    const member = String(reply[i]);
    const raw = reply[i + 1];
    const jobId = member.slice(16);
    let job: JobRecord | null = null;
    if (typeof raw === "string") job = parseJobRecord(raw);
    else if (isValidJobId(jobId)) {
      // Its Redis record expired after the end: the archive keeps the final one.
      job = await readArchivedRecord(archive, jobId);
      if (job === null) stale.push(member);
    }
    // The owner check again: an index is only written for its owner, but a record is the truth.
    if (job === null || job.owner !== query.owner) continue;
    if (query.status !== undefined && job.status !== query.status) continue;
    jobs.push(job);
  }
  return { jobs, nextCursor: more ? last : null, stale };
}
