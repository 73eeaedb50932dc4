import { describe, expect, it } from "vitest";
import type { z } from "zod";
import type { JobRecord, JobSpecInput, JobStepInput, StepSummary } from "../../src/client/types.ts";
import { jobSpecSchema } from "../../src/shared/job-spec.ts";

// The client writes the job spec's input type out by hand (so a browser app's type check does
// not see the sealing code); `npm run typecheck` fails here when it drifts from the schema.
type SchemaInput = z.input<typeof jobSpecSchema>;
type SchemaStep = SchemaInput["steps"][number];
type Writable<T> = { -readonly [K in keyof T]: T[K] };
type ClientSpec = Writable<Omit<JobSpecInput, "steps">> & { steps: Writable<JobStepInput>[] };
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;

const specMatches: Same<ClientSpec, SchemaInput> = true;
const stepMatches: Same<Writable<JobStepInput>, SchemaStep> = true;
// Every field of the schema is named by the client's type, and no other.
const specKeys: Same<keyof JobSpecInput, keyof SchemaInput> = true;
const stepKeys: Same<keyof JobStepInput, keyof SchemaStep> = true;
// The record's steps (zod) are the `StepSummary` the client and the runner use.
type RecordStep = NonNullable<JobRecord["steps"]>[number];
const summaryMatches: Same<Writable<StepSummary>, RecordStep> = true;

describe("the client's JobSpecInput", () => {
  it("is the schema's input type", () => {
    expect([specMatches, stepMatches, specKeys, stepKeys, summaryMatches]).toEqual([
      true,
      true,
      true,
      true,
      true,
    ]);
    const spec: JobSpecInput = {
      steps: [{ name: "Building", phase: "build", command: "npm run build" }],
    };
    expect(jobSpecSchema.safeParse(spec).success).toBe(true);
  });
});
