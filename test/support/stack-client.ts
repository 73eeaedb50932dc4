import { Redis } from "@upstash/redis";
import { EventSource } from "eventsource";
import { expect } from "vitest";
import type { LogLine } from "../../src/shared/entry.ts";
import type { JobSpec } from "../../src/shared/job-spec.ts";
import type { Stack } from "../../tools/dev/stack.ts";

// The Node tests' one client of the whole stack on loopback (tools/dev/stack.ts): a signed-in
// user's calls to the public API, and a viewer following a job with a real EventSource.

/** The test's own client of the stack's Redis, through its Upstash bridge: values as stored. */
export function stackRedis(stack: Stack): Redis {
  return new Redis({
    url: stack.bridge.url,
    token: stack.bridge.token,
    automaticDeserialization: false,
    enableTelemetry: false,
  });
}

/** A viewer of a job from its first line on: `lines` and `raw` (each event's data) fill as they come. */
export interface Following {
  readonly lines: LogLine[];
  readonly raw: string[];
  /** The status the done event carries; rejects when none came within 90 s. */
  readonly done: Promise<string>;
}

export interface StackUser {
  readonly id: string;
  readonly token: string;
  /** A call to the Worker as this user, with a JSON Content-Type unless `init` says otherwise. */
  api(path: string, init?: RequestInit): Promise<Response>;
  /** POST /api/jobs: the job's id, once the answer is 201 with the job queued. */
  createJob(spec: Partial<JobSpec>): Promise<string>;
  /** Follows the job's SSE stream with EventSource (WHATWG-conformant) until `done`. */
  follow(jobId: string): Following;
}

export function stackUser(stack: Stack, id: string): StackUser {
  const token = stack.signToken(id);
  const api = (path: string, init: RequestInit = {}): Promise<Response> =>
    fetch(`${stack.workerUrl}${path}`, {
      ...init,
      headers: {
        Authorization: `Bearer ${token}`,
        "Content-Type": "application/json",
        ...(init.headers ?? {}),
      },
    });
  return {
    id,
    token,
    api,
    async createJob(spec) {
      const response = await api("/api/jobs", { method: "POST", body: JSON.stringify(spec) });
      expect(response.status).toBe(201);
      const body = (await response.json()) as { id: string; status: string };
      expect(body.status).toBe("queued");
      return body.id;
    },
    follow(jobId) {
      const lines: LogLine[] = [];
      const raw: string[] = [];
      const done = new Promise<string>((resolve, reject) => {
        const source = new EventSource(
          `${stack.workerUrl}/api/jobs/${jobId}/logs/stream?after=0-0:0`,
          {
            fetch: (input, init) =>
              fetch(input, {
                ...init,
                headers: { ...init?.headers, Authorization: `Bearer ${token}` },
              }),
          },
        );
        const timer = setTimeout(() => {
          source.close();
          reject(new Error(`no done event for ${jobId}; got ${lines.length} lines`));
        }, 90_000);
        source.addEventListener("log", (event) => {
          raw.push(event.data);
          lines.push(...(JSON.parse(event.data) as { lines: LogLine[] }).lines);
        });
        source.addEventListener("done", (event) => {
          raw.push(event.data);
          clearTimeout(timer);
          source.close();
          resolve((JSON.parse(event.data) as { status: string }).status);
        });
      });
      return { lines, raw, done };
    },
  };
}

/** What the viewer saw once its done event came. */
export async function untilDone(
  following: Following,
): Promise<{ lines: LogLine[]; raw: string[]; status: string }> {
  const status = await following.done;
  return { lines: following.lines, raw: following.raw, status };
}
