/** One Redis command as it goes to Redis: the name, then its arguments, all strings. */
export type RedisCommand = readonly [name: string, ...args: string[]];

export type ParsedCommands =
  | { readonly ok: true; readonly commands: readonly RedisCommand[] }
  | { readonly ok: false; readonly error: string };

/** Body of `POST /`: one command, `["set", "k", "v"]`. */
export function parseSingleCommandBody(body: unknown): ParsedCommands {
  const parsed = parseCommand(body, "the request body");
  if (typeof parsed === "string") return { ok: false, error: parsed };
  return checkAllowed([parsed]);
}

/** Body of `POST /pipeline` and `POST /multi-exec`: `[["set", "k", "v"], ["get", "k"]]`. */
export function parseCommandListBody(body: unknown): ParsedCommands {
  if (!Array.isArray(body)) {
    return { ok: false, error: "ERR the request body must be a JSON array of commands" };
  }
  if (body.length === 0) return { ok: false, error: "ERR the request body holds no command" };
  const commands: RedisCommand[] = [];
  for (const [index, item] of body.entries()) {
    const parsed = parseCommand(item, `command ${index + 1}`);
    if (typeof parsed === "string") return { ok: false, error: parsed };
    commands.push(parsed);
  }
  return checkAllowed(commands);
}

function parseCommand(value: unknown, where: string): RedisCommand | string {
  if (!Array.isArray(value)) return `ERR ${where} must be a JSON array such as ["get","key"]`;
  const [name, ...rest] = value as unknown[];
  if (typeof name !== "string" || name === "") {
    return `ERR ${where} must start with a command name (a non-empty string)`;
  }
  const args: string[] = [];
  for (const [index, arg] of rest.entries()) {
    if (typeof arg === "string") args.push(arg);
    else if (typeof arg === "number") args.push(String(arg));
    else
      return `ERR argument ${index + 1} of ${where} must be a string or a number, got ${arg === null ? "null" : typeof arg}`;
  }
  return [name, ...args];
}

// Over REST each request may share one Redis connection with every other request, so a command
// must neither wait for another client nor change the connection's state.
const BLOCKING = new Set([
  "blpop",
  "brpop",
  "brpoplpush",
  "blmove",
  "blmpop",
  "bzpopmin",
  "bzpopmax",
  "bzmpop",
  "wait",
  "waitaof",
]);
const CONNECTION_STATE = new Set([
  "subscribe",
  "psubscribe",
  "ssubscribe",
  "unsubscribe",
  "punsubscribe",
  "sunsubscribe",
  "monitor",
  "multi",
  "exec",
  "discard",
  "watch",
  "unwatch",
  "select",
  "hello",
  "auth",
  "reset",
  "quit",
  "sync",
  "psync",
  "shutdown",
]);

/** Why `command` cannot run over REST, as a Redis-style error, or undefined when it can. */
export function restrictionOf(command: RedisCommand): string | undefined {
  const [name, ...args] = command;
  const lower = name.toLowerCase();
  if (
    BLOCKING.has(lower) ||
    ((lower === "xread" || lower === "xreadgroup") && hasBlockOption(args))
  ) {
    return `ERR blocking command ${name.toUpperCase()} is not supported over REST`;
  }
  if (CONNECTION_STATE.has(lower) || (lower === "client" && args[0]?.toLowerCase() === "reply")) {
    return `ERR command ${name.toUpperCase()} is not supported over REST`;
  }
  return undefined;
}

// XREAD [COUNT n] [BLOCK ms] STREAMS ...; XREADGROUP GROUP g c [COUNT n] [BLOCK ms] [NOACK] STREAMS ...
// Only the options before STREAMS count: a key or group may well be named "block".
function hasBlockOption(args: readonly string[]): boolean {
  for (let i = 0; i < args.length; i++) {
    const token = args[i]?.toLowerCase();
    if (token === "streams") return false;
    if (token === "block") return true;
    if (token === "group") i += 2;
    else if (token === "count") i += 1;
  }
  return false;
}

function checkAllowed(commands: readonly RedisCommand[]): ParsedCommands {
  for (const command of commands) {
    const restriction = restrictionOf(command);
    if (restriction !== undefined) return { ok: false, error: restriction };
  }
  return { ok: true, commands };
}
