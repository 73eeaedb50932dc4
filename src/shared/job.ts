import { z } from "zod";
import { MAX_STEPS } from "./steps.ts";

export const JOB_STATUSES = ["queued", "running", "ready", "failed", "cancelled"] as const;
export type JobStatus = (typeof JOB_STATUSES)[number];
export const TERMINAL_STATUSES = ["ready", "failed", "cancelled"] as const;
export type TerminalStatus = (typeof TERMINAL_STATUSES)[number];

export function isTerminalStatus(status: string): status is TerminalStatus {
  return (TERMINAL_STATUSES as readonly string[]).includes(status);
}

const isoTime = z.iso.datetime({ offset: false });

/** `StepSummary` (src/shared/steps.ts) as the record stores it. */
const stepSummarySchema = z.object({
  index: z.number().int().min(0).max(MAX_STEPS),
  name: z.string().max(200),
  phase: z.string().max(32),
  status: z.enum(["running", "succeeded", "failed", "cancelled"]),
  started_at: isoTime,
  finished_at: isoTime.nullable(),
  duration_ms: z.number().int().min(0).nullable(),
  exit_code: z.number().int().nullable(),
  first_line: z.number().int().min(0).nullable(),
  lines: z.number().int().min(0).nullable(),
});

/** A job as stored at `jobKey(id)` (JSON) and as `GET /api/jobs/:id` shows it. */
export const jobRecordSchema = z.object({
  id: z.string(),
  /** The Clerk user id of the job's owner: the only user who may read it. */
  owner: z.string().min(1),
  status: z.enum(JOB_STATUSES),
  /** What the viewer calls the build: the spec's `title`, else its first step's name. */
  title: z.string().max(200).optional(),
  created_at: isoTime,
  started_at: isoTime.nullable(),
  finished_at: isoTime.nullable(),
  exit_code: z.number().int().nullable().optional(),
  /** Set once the log is in the archive (R2 or S3); Redis's copy expires 24 hours after the last line. */
  archived_at: isoTime.nullable().optional(),
  /** The steps started so far, oldest first (the runner updates them at each step's start and end). */
  steps: z.array(stepSummarySchema).max(MAX_STEPS).readonly().optional(),
});
export type JobRecord = z.infer<typeof jobRecordSchema>;

export function parseJobRecord(text: string): JobRecord {
  return jobRecordSchema.parse(JSON.parse(text));
}
