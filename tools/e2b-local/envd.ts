import { posix } from "node:path";
import type { MessageInitShape } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import type { ConnectRouter, HandlerContext } from "@connectrpc/connect";
import { Code, ConnectError } from "@connectrpc/connect";
import { Hono } from "hono";
import { SandboxError } from "../../worker-build-runner/sandbox/types.ts";
import type { components as EnvdHttp } from "./generated/envd-http.ts";
import type { EntryInfoSchema } from "./generated/filesystem/filesystem_pb.ts";
import { Filesystem, FileType } from "./generated/filesystem/filesystem_pb.ts";
import { Process, Signal } from "./generated/process/process_pb.ts";
import type { HostedProcess, HostedSandbox, ProcessEventInit } from "./hosted-sandbox.ts";
import { captureBytes, captureText, HelperCommandError, shellQuote } from "./hosted-sandbox.ts";

/** Finds the sandbox an envd request is for (E2b-Sandbox-Id) and checks its access token. */
export type SandboxLookup = (headers: Headers) => HostedSandbox | EnvdRefusal;

export interface EnvdRefusal {
  readonly status: 401 | 502;
  readonly message: string;
}

// What envd sends between events when a stream is idle, unless the client asks otherwise.
const DEFAULT_KEEPALIVE_SECONDS = 50;
const EXIT_MISSING = 44;
const EXIT_EXISTS = 45;

/** envd's process and filesystem services over the Connect protocol. */
export function envdRoutes(lookup: SandboxLookup): (router: ConnectRouter) => void {
  const sandboxOf = (context: HandlerContext): HostedSandbox => {
    const found = lookup(context.requestHeader);
    if ("status" in found)
      throw new ConnectError(
        found.message,
        found.status === 401 ? Code.Unauthenticated : Code.Unavailable,
      );
    return found;
  };
  const processOf = (
    sandbox: HostedSandbox,
    selector: { case: "pid"; value: number } | { case: "tag"; value: string } | { case: undefined },
  ): HostedProcess => {
    const process =
      selector.case === "pid"
        ? sandbox.processes.get(selector.value)
        : selector.case === "tag"
          ? [...sandbox.processes.values()].find((candidate) => candidate.tag === selector.value)
          : undefined;
    if (process === undefined)
      throw new ConnectError(
        selector.case === undefined
          ? "no process selected"
          : `process with ${selector.case} ${selector.value} not found`,
        Code.NotFound,
      );
    return process;
  };

  return (router) => {
    router.service(Process, {
      async *start(request, context) {
        const sandbox = sandboxOf(context);
        if (request.pty !== undefined)
          throw new ConnectError("PTY is not supported by e2b-local", Code.Unimplemented);
        if (request.stdin === true)
          throw new ConnectError("stdin is not supported by e2b-local", Code.Unimplemented);
        const config = request.process;
        if (config === undefined || config.cmd === "")
          throw new ConnectError("process.cmd is required", Code.InvalidArgument);
        const events = eventQueue();
        let process: HostedProcess;
        try {
          process = await sandbox.start(
            {
              cmd: config.cmd,
              args: config.args,
              envs: config.envs,
              cwd: resolvePath(sandbox, config.cwd ?? sandbox.home),
            },
            request.tag,
            events.push,
          );
        } catch (error) {
          throw new ConnectError(messageOf(error), Code.InvalidArgument);
        }
        // Connect-Timeout-Ms is the command's lifetime under envd: it kills the process then.
        const timeoutMs = context.timeoutMs();
        const deadline =
          timeoutMs === undefined
            ? undefined
            : setTimeout(
                () => void sandbox.signal(process.pid, "KILL").catch(() => undefined),
                timeoutMs,
              );
        try {
          yield { event: { event: { case: "start", value: { pid: process.pid } } } };
          yield* follow(events, context);
        } finally {
          clearTimeout(deadline);
        }
      },
      async *connect(request, context) {
        const sandbox = sandboxOf(context);
        const process = processOf(sandbox, request.process?.selector ?? { case: undefined });
        const events = eventQueue();
        const unsubscribe = process.subscribe(events.push);
        try {
          yield { event: { event: { case: "start", value: { pid: process.pid } } } };
          yield* follow(events, context);
        } finally {
          unsubscribe();
        }
      },
      list(_request, context) {
        const sandbox = sandboxOf(context);
        return {
          processes: [...sandbox.processes.values()].map((process) => ({
            pid: process.pid,
            config: process.config,
            ...(process.tag === undefined ? {} : { tag: process.tag }),
          })),
        };
      },
      async sendSignal(request, context) {
        const sandbox = sandboxOf(context);
        const process = processOf(sandbox, request.process?.selector ?? { case: undefined });
        if (request.signal !== Signal.SIGKILL && request.signal !== Signal.SIGTERM)
          throw new ConnectError(`invalid signal: ${request.signal}`, Code.Unimplemented);
        await sandbox.signal(process.pid, request.signal === Signal.SIGKILL ? "KILL" : "TERM");
        return {};
      },
    });

    router.service(Filesystem, {
      async stat(request, context) {
        const sandbox = sandboxOf(context);
        return { entry: await statEntry(sandbox, resolvePath(sandbox, request.path)) };
      },
      async makeDir(request, context) {
        const sandbox = sandboxOf(context);
        const path = resolvePath(sandbox, request.path);
        await helper(
          sandbox,
          `[ -e ${shellQuote(path)} ] && exit ${EXIT_EXISTS}; mkdir -p -- ${shellQuote(path)}`,
          path,
        );
        return { entry: await statEntry(sandbox, path) };
      },
      async move(request, context) {
        const sandbox = sandboxOf(context);
        const source = resolvePath(sandbox, request.source);
        const destination = resolvePath(sandbox, request.destination);
        await helper(
          sandbox,
          `[ -e ${shellQuote(source)} ] || exit ${EXIT_MISSING}; mkdir -p -- ${shellQuote(posix.dirname(destination))} && mv -- ${shellQuote(source)} ${shellQuote(destination)}`,
          source,
        );
        return { entry: await statEntry(sandbox, destination) };
      },
      async remove(request, context) {
        const sandbox = sandboxOf(context);
        const path = resolvePath(sandbox, request.path);
        await helper(
          sandbox,
          `[ -e ${shellQuote(path)} ] || exit ${EXIT_MISSING}; rm -rf -- ${shellQuote(path)}`,
          path,
        );
        return {};
      },
      async listDir(request, context) {
        const sandbox = sandboxOf(context);
        const path = resolvePath(sandbox, request.path);
        const depth = Math.max(1, request.depth);
        const text = await helper(
          sandbox,
          `[ -d ${shellQuote(path)} ] || exit ${EXIT_MISSING}; find ${shellQuote(path)} -mindepth 1 -maxdepth ${depth} -printf ${shellQuote(FIND_FORMAT)}`,
          path,
        );
        return { entries: parseEntries(text) };
      },
    });
  };
}

/** envd's HTTP side: file reads and writes, and the health probe. */
export function envdHttp(lookup: SandboxLookup): Hono {
  const app = new Hono();
  const sandboxOr = (headers: Headers): HostedSandbox | Response => {
    const found = lookup(headers);
    if ("status" in found)
      return Response.json(
        { code: found.status, message: found.message },
        { status: found.status },
      );
    return found;
  };

  app.get("/health", (c) => {
    const found = sandboxOr(c.req.raw.headers);
    return found instanceof Response ? found : c.body(null, 204);
  });

  app.get("/files", async (c) => {
    const found = sandboxOr(c.req.raw.headers);
    if (found instanceof Response) return found;
    const path = resolvePath(found, c.req.query("path") ?? "");
    try {
      const bytes = await captureBytes(
        found.session,
        `[ -f ${shellQuote(path)} ] || exit ${EXIT_MISSING}; cat -- ${shellQuote(path)}`,
      );
      return c.body(new Uint8Array(bytes), 200, { "content-type": "application/octet-stream" });
    } catch (error) {
      return httpError(error, path);
    }
  });

  app.post("/files", async (c) => {
    const found = sandboxOr(c.req.raw.headers);
    if (found instanceof Response) return found;
    const queryPath = c.req.query("path");
    const uploads: { path: string; bytes: Uint8Array }[] = [];
    if ((c.req.header("content-type") ?? "").startsWith("multipart/form-data")) {
      const form = await c.req.formData();
      for (const value of form.getAll("file")) {
        if (typeof value === "string") continue;
        const path = queryPath ?? value.name;
        uploads.push({ path, bytes: new Uint8Array(await value.arrayBuffer()) });
      }
    } else if (queryPath !== undefined) {
      uploads.push({ path: queryPath, bytes: new Uint8Array(await c.req.arrayBuffer()) });
    }
    if (uploads.length === 0) return c.json({ code: 400, message: "no file in the request" }, 400);
    const written: EnvdHttp["schemas"]["EntryInfo"][] = [];
    for (const upload of uploads) {
      const path = resolvePath(found, upload.path);
      try {
        await found.session.writeFile(path, upload.bytes);
      } catch (error) {
        return httpError(error, path);
      }
      written.push({ path, name: posix.basename(path), type: "file" });
    }
    return c.json(written);
  });

  return app;
}

/** Relative paths are relative to the user's home, as under envd. */
function resolvePath(sandbox: HostedSandbox, path: string): string {
  return posix.resolve(sandbox.home, path === "" ? "." : path);
}

async function helper(sandbox: HostedSandbox, command: string, path: string): Promise<string> {
  try {
    return await captureText(sandbox.session, command);
  } catch (error) {
    if (error instanceof HelperCommandError && error.exitCode === EXIT_MISSING)
      throw new ConnectError(`path not found: ${path}`, Code.NotFound);
    if (error instanceof HelperCommandError && error.exitCode === EXIT_EXISTS)
      throw new ConnectError(`path already exists: ${path}`, Code.AlreadyExists);
    throw new ConnectError(messageOf(error), Code.Internal);
  }
}

// find's -printf: type, size, mode (octal), owner, group, mtime (s), symlink target, path.
const FIND_FORMAT = "%y\\t%s\\t%m\\t%u\\t%g\\t%T@\\t%l\\t%p\\n";

type EntryInit = MessageInitShape<typeof EntryInfoSchema>;

async function statEntry(sandbox: HostedSandbox, path: string): Promise<EntryInit> {
  const text = await helper(
    sandbox,
    `[ -e ${shellQuote(path)} ] || [ -L ${shellQuote(path)} ] || exit ${EXIT_MISSING}; find ${shellQuote(path)} -maxdepth 0 -printf ${shellQuote(FIND_FORMAT)}`,
    path,
  );
  const [entry] = parseEntries(text);
  if (entry === undefined) throw new ConnectError(`path not found: ${path}`, Code.NotFound);
  return entry;
}

function parseEntries(text: string): EntryInit[] {
  const entries: EntryInit[] = [];
  for (const line of text.split("\n")) {
    const [type = "", size = "0", mode = "0", owner = "", group = "", mtime = "0", target = ""] =
      line.split("\t");
    const path = line.split("\t").slice(7).join("\t");
    if (path === "") continue;
    const modeBits = Number.parseInt(mode, 8);
    entries.push({
      name: posix.basename(path),
      path,
      type: type === "d" ? FileType.DIRECTORY : type === "l" ? FileType.SYMLINK : FileType.FILE,
      size: BigInt(size),
      mode: modeBits,
      permissions: permissionsText(type, modeBits),
      owner,
      group,
      modifiedTime: timestampFromMs(Math.round(Number(mtime) * 1000)),
      ...(target === "" ? {} : { symlinkTarget: target }),
    });
  }
  return entries;
}

function permissionsText(type: string, mode: number): string {
  const bits = ["r", "w", "x"];
  let text = type === "d" ? "d" : type === "l" ? "l" : "-";
  for (let shift = 8; shift >= 0; shift--)
    text += mode & (1 << shift) ? bits[(8 - shift) % 3] : "-";
  return text;
}

function httpError(error: unknown, path: string): Response {
  if (error instanceof HelperCommandError && error.exitCode === EXIT_MISSING)
    return Response.json({ code: 404, message: `path not found: ${path}` }, { status: 404 });
  if (error instanceof SandboxError && error.code === "bad_path")
    return Response.json({ code: 400, message: error.message }, { status: 400 });
  return Response.json({ code: 500, message: messageOf(error) }, { status: 500 });
}

interface EventQueue {
  readonly push: (event: ProcessEventInit) => void;
  /** The next event, a keepalive after `idleMs` without one, or undefined once `signal` aborts. */
  next(signal: AbortSignal, idleMs: number): Promise<ProcessEventInit | undefined>;
}

function eventQueue(): EventQueue {
  let items: ProcessEventInit[] = [];
  let head = 0;
  let wake: (() => void) | undefined;
  return {
    push(event) {
      items.push(event);
      wake?.();
    },
    async next(signal, idleMs) {
      if (head === items.length) {
        if (signal.aborted) return undefined;
        const woke = await new Promise<"event" | "idle" | "aborted">((resolve) => {
          // Whichever comes first, leave nothing behind.
          const finish = (how: "event" | "idle" | "aborted"): void => {
            clearTimeout(timer);
            signal.removeEventListener("abort", onAbort);
            wake = undefined;
            resolve(how);
          };
          const onAbort = (): void => finish("aborted");
          const timer = setTimeout(() => finish("idle"), idleMs);
          signal.addEventListener("abort", onAbort, { once: true });
          wake = () => finish("event");
        });
        if (woke === "aborted") return undefined;
        if (woke === "idle") return { case: "keepalive", value: {} };
      }
      const event = items[head++];
      if (head > 1024 && head * 2 > items.length) {
        items = items.slice(head);
        head = 0;
      }
      return event;
    },
  };
}

/** Yields a process's events until its end event (or until the client goes away). */
async function* follow(
  events: EventQueue,
  context: HandlerContext,
): AsyncGenerator<{ event: { event: ProcessEventInit } }> {
  const interval = Number(context.requestHeader.get("keepalive-ping-interval"));
  const idleMs =
    (Number.isFinite(interval) && interval > 0 ? interval : DEFAULT_KEEPALIVE_SECONDS) * 1000;
  for (;;) {
    const event = await events.next(context.signal, idleMs);
    if (event === undefined) return;
    yield { event: { event } };
    if (event.case === "end") return;
  }
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
