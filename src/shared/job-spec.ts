import { z } from "zod";
import { PHASE_PATTERN } from "./entry.ts";
import {
  type AesKey,
  openJobValues,
  SEALED_VALUES_PATTERN,
  SealedValuesError,
  sealJobValues,
} from "./job-secrets.ts";
import { JOB_ID_PATTERN } from "./keys.ts";

/** Names that say a variable holds a secret: its value is masked even if sent under `env`. */
export const SECRET_NAME_PATTERN =
  /SECRET|TOKEN|PASSW(?:OR)?D|PWD|API_?KEY|ACCESS_?KEY|PRIVATE_?KEY|CREDENTIAL|AUTH|DATABASE_URL|DSN|CONNECTION_STRING/i;

const envName = z
  .string()
  .regex(/^[A-Za-z_][A-Za-z0-9_]{0,127}$/, "an environment variable name is letters, digits and _");
const envValues = z
  .record(envName, z.string().max(32 * 1024))
  .refine((env) => Object.keys(env).length <= 200, "at most 200 variables");
// A relative path inside the project: no absolute paths, no `..`, no empty or odd segments.
const filePath = z
  .string()
  .min(1)
  .max(512)
  .regex(
    /^(?!\/)(?!.*(?:^|\/)\.\.?(?:\/|$))[A-Za-z0-9._@+\-/ ]+$/,
    "a file path is relative and stays inside the project",
  );

export const MAX_FILES_BYTES = 96 * 1024;

export const jobStepSchema = z.strictObject({
  /** Shown as the stage's system line: `--- Installing dependencies ---`. */
  name: z.string().min(1).max(200),
  phase: z
    .string()
    .regex(PHASE_PATTERN, "a phase is a lowercase name like install, build or dev_server"),
  command: z.string().min(1).max(10_000),
  timeout_ms: z.number().int().min(1_000).max(3_600_000).optional(),
  /** A long-running process (a dev server): the job is ready once it prints `ready_text` or runs for `startup_ms`. */
  background: z.boolean().optional(),
  ready_text: z.string().min(1).max(200).optional(),
  startup_ms: z.number().int().min(0).max(300_000).optional(),
});
export type JobStep = z.infer<typeof jobStepSchema>;

/** What a user submits with `POST /api/jobs`. */
export const jobSpecSchema = z
  .strictObject({
    /** What the build page calls this build ("Deploy my-app"); the first step's name if absent. */
    title: z.string().min(1).max(200).optional(),
    steps: z.array(jobStepSchema).min(1).max(50),
    env: envValues.default({}),
    /** Injected into the sandbox like env, and registered with the redactor before anything runs. */
    secrets: envValues.default({}),
    /** A small project to build: path -> UTF-8 content. */
    files: z.record(filePath, z.string()).default({}),
  })
  .refine(
    (spec) =>
      Object.values(spec.files).reduce((sum, text) => sum + text.length, 0) <= MAX_FILES_BYTES,
    {
      error: `files may hold at most ${MAX_FILES_BYTES} bytes in all`,
      path: ["files"],
    },
  );
export type JobSpec = z.infer<typeof jobSpecSchema>;

/** What the runner runs: a spec with the job's id and owner. */
export const runRequestSchema = z.strictObject({
  job_id: z.string().regex(JOB_ID_PATTERN),
  owner: z.string().min(1).max(200),
  spec: jobSpecSchema,
});
export type RunRequest = z.infer<typeof runRequestSchema>;

/**
 * What the Queue carries and the runner's `POST /jobs` accepts: the run request with the spec's
 * `env` and `secrets` sealed (src/shared/job-secrets.ts) for this job, the rest in the clear.
 */
export const sealedRunRequestSchema = z.strictObject({
  job_id: z.string().regex(JOB_ID_PATTERN),
  owner: z.string().min(1).max(200),
  spec: z.strictObject({ steps: jobSpecSchema.shape.steps, files: jobSpecSchema.shape.files }),
  sealed: z.string().regex(SEALED_VALUES_PATTERN, "sealed values are v1.<iv>.<data>"),
});
export type SealedRunRequest = z.infer<typeof sealedRunRequestSchema>;

export async function sealRunRequest(key: AesKey, request: RunRequest): Promise<SealedRunRequest> {
  // The title stays with the job record; the runner has no use for it.
  const { env, secrets, title: _title, ...open } = request.spec;
  return {
    job_id: request.job_id,
    owner: request.owner,
    spec: open,
    sealed: await sealJobValues(key, request.job_id, { env, secrets }),
  };
}

/** The run request again, its values checked as the user's spec was; throws SealedValuesError. */
export async function openRunRequest(key: AesKey, sealed: SealedRunRequest): Promise<RunRequest> {
  const values = await openJobValues(key, sealed.job_id, sealed.sealed);
  const spec = jobSpecSchema.safeParse({ ...sealed.spec, ...values });
  if (!spec.success)
    throw new SealedValuesError("the sealed values are not a job's env and secrets");
  return { job_id: sealed.job_id, owner: sealed.owner, spec: spec.data };
}

/** Every value the build must never show: all secrets, and env values whose names say secret. */
export function secretValuesOf(
  spec: Pick<JobSpec, "env" | "secrets">,
): { name: string; value: string }[] {
  const named = Object.entries(spec.env).filter(([name]) => SECRET_NAME_PATTERN.test(name));
  return [...Object.entries(spec.secrets), ...named].map(([name, value]) => ({ name, value }));
}
