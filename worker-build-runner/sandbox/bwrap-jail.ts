import { type ChildProcess, spawn } from "node:child_process";
import { randomInt } from "node:crypto";
import { once } from "node:events";
import {
  accessSync,
  constants as fsConstants,
  lstatSync,
  readFileSync,
  readlinkSync,
  statSync,
} from "node:fs";
import { readdir, readFile, stat, statfs } from "node:fs/promises";
import { networkInterfaces } from "node:os";
import { delimiter, dirname, join } from "node:path";
import { type BuildCgroups, buildCgroups, JOIN_CGROUP } from "./build-cgroup.ts";
import type { Jail, JailFactory } from "./jail.ts";
import { type LimitExceeded, SandboxError } from "./types.ts";
import { type BuildUsage, watchUsage } from "./usage-watch.ts";

export interface BuildLimits {
  /** The build's processes together, in private resident memory. */
  readonly memoryBytes: number;
  /** Processes and threads, the build's together (RLIMIT_NPROC of its own uid). */
  readonly processes: number;
  /** CPU time of the build's processes together (counted by its cgroup). */
  readonly cpuSeconds: number;
  /** The home directory with the workdir; /tmp gets a quarter of it besides. */
  readonly diskBytes: number;
}

export const DEFAULT_BUILD_LIMITS: BuildLimits = {
  memoryBytes: 2048 * 1024 * 1024,
  processes: 512,
  cpuSeconds: 900,
  diskBytes: 2048 * 1024 * 1024,
};

/**
 * The host's CA-trust variables: a build behind a TLS-inspecting proxy needs them (npm fails
 * with SELF_SIGNED_CERT_IN_CHAIN without), and they name public certificates, not secrets.
 */
export const CA_TRUST_VARIABLES = [
  "NODE_EXTRA_CA_CERTS",
  "SSL_CERT_FILE",
  "SSL_CERT_DIR",
  "CURL_CA_BUNDLE",
  "REQUESTS_CA_BUNDLE",
  "GIT_SSL_CAINFO",
  "PIP_CERT",
] as const;

export interface BwrapJailOptions {
  readonly limits?: BuildLimits;
  /** Further variables of the runner's environment to pass into builds. */
  readonly passEnv?: readonly string[];
}

const HOME = "/home/user";
const WORKDIR = `${HOME}/app`;
const NODE_DIR = "/opt/node/bin";
// The uid commands have inside; each build's own host uid is mapped to it.
const INSIDE_ID = "1000";
// Each build gets a host uid nobody else has: random in a range no distribution hands out
// (adduser stops at 60000, subordinate ranges start at 100000 and are 65536 wide).
const UID_RANGE: readonly [number, number] = [1 << 30, 2 ** 31 - 2];
// Outbound traffic goes to the internet only: slirp4netns already refuses the host's loopback,
// these routes refuse the host's other addresses, private networks and the cloud metadata service.
const REFUSED_NETWORKS = [
  "0.0.0.0/8",
  "10.0.0.0/8",
  "100.64.0.0/10",
  "169.254.0.0/16",
  "172.16.0.0/12",
  "192.168.0.0/16",
  "198.18.0.0/15",
  "224.0.0.0/3",
];
const TOOLS = ["bwrap", "slirp4netns", "nsenter", "setpriv", "prlimit", "ip"] as const;
/** Where each tool is on the runner's PATH; spawned by these paths. */
type Tools = Readonly<Record<(typeof TOOLS)[number], string>>;
const DEBIAN_PACKAGES = "bubblewrap slirp4netns util-linux iproute2";
const DISK_FULL_BYTES = 1024 * 1024;
const MIB = 1024 * 1024;

/**
 * Each build in bubblewrap: its own host uid, its own user, PID, mount, IPC, UTS, cgroup and
 * network namespaces, system directories read-only, a size-limited tmpfs for its home and
 * workdir and another for /tmp, outbound network through slirp4netns (no host loopback, no
 * private networks), and no environment of the runner's beyond the CA-trust variables.
 * Commands join the build's namespaces with nsenter. The build's init is bwrap's: when it dies
 * (the session ends, or the runner dies: --die-with-parent) the kernel kills every process in
 * the PID namespace, including any that called setsid, and the tmpfs with the workdir is gone.
 */
export function bwrapJail(options: BwrapJailOptions = {}): JailFactory {
  const limits = options.limits ?? DEFAULT_BUILD_LIMITS;
  for (const [name, value] of Object.entries(limits)) {
    if (!(Number.isSafeInteger(value) && value > 0))
      throw new SandboxError(
        "bad_config",
        `local sandbox: the ${name} limit must be a positive integer`,
      );
  }
  const found = TOOLS.map((tool) => [tool, findOnPath(tool)] as const);
  const missing = found.filter(([, path]) => path === undefined).map(([tool]) => tool);
  if (missing.length > 0) {
    throw new SandboxError(
      "bad_config",
      `local sandbox: ${missing.join(", ")} not found; install Debian's packages (apt-get install -y ${DEBIAN_PACKAGES}), or set SANDBOX=e2b, or SANDBOX=local-unsafe for development only`,
    );
  }
  if (process.getuid?.() !== 0) {
    throw new SandboxError(
      "bad_config",
      "local sandbox: the runner must run as root to give each build a uid of its own (it drops to that uid before bwrap); or set SANDBOX=e2b, or SANDBOX=local-unsafe for development only",
    );
  }
  const tools = Object.fromEntries(found) as Tools;
  const cgroups = buildCgroups();
  const env = buildEnvironment(options.passEnv ?? []);
  const nodeDir = dirname(process.execPath);
  const bindArgs = systemBinds(env, nodeDir);

  return {
    isolated: true,
    open: () => openJail({ tools, cgroups, limits, env, bindArgs }),
  };
}

function buildEnvironment(passEnv: readonly string[]): Record<string, string> {
  const env: Record<string, string> = {
    PATH: `${NODE_DIR}:/usr/local/bin:/usr/bin:/bin`,
    // The workdir, as the unisolated sandbox always had it: a command that runs "in the home
    // directory" (e2b-local's envd does) then runs inside the workdir.
    HOME: WORKDIR,
    USER: "user",
    LOGNAME: "user",
  };
  for (const name of ["LANG", "LC_ALL", ...CA_TRUST_VARIABLES, ...passEnv]) {
    const value = process.env[name];
    if (value !== undefined) env[name] = value;
  }
  return env;
}

// The host's system directories, read-only; merged-/usr symlinks kept as symlinks.
function systemBinds(env: Readonly<Record<string, string>>, nodeDir: string): string[] {
  const args = ["--ro-bind", "/usr", "/usr", "--ro-bind", "/etc", "/etc"];
  for (const dir of ["/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"]) {
    const info = lstatSync(dir, { throwIfNoEntry: false });
    if (info?.isSymbolicLink()) args.push("--symlink", readlinkSync(dir), dir);
    else if (info?.isDirectory()) args.push("--ro-bind", dir, dir);
  }
  // The runner's own Node, so builds have the Node it was tested with whatever the host has.
  args.push("--ro-bind", nodeDir, NODE_DIR);
  // Certificates named by the CA-trust variables must be readable inside.
  for (const name of CA_TRUST_VARIABLES) {
    const path = env[name];
    if (path?.startsWith("/") && !/^\/(usr|etc)\//.test(path))
      args.push("--ro-bind-try", path, path);
  }
  return args;
}

function findOnPath(tool: string): string | undefined {
  for (const dir of (process.env.PATH ?? "").split(delimiter)) {
    if (!dir.startsWith("/")) continue;
    const candidate = join(dir, tool);
    try {
      accessSync(candidate, fsConstants.X_OK);
      return candidate;
    } catch {}
  }
  return undefined;
}

function pickUid(): number {
  const taken = new Set(
    readFileSync("/etc/passwd", "utf8")
      .split("\n")
      .map((line) => Number(line.split(":")[2])),
  );
  for (;;) {
    const uid = randomInt(UID_RANGE[0], UID_RANGE[1]);
    if (!taken.has(uid)) return uid;
  }
}

// Small files the sandbox sees in place of the host's: its DNS is slirp4netns's, its user is "user".
function etcFiles(): Record<string, string> {
  return {
    "/etc/resolv.conf": "nameserver 10.0.2.3\n",
    "/etc/passwd": `root:x:0:0:root:/root:/usr/sbin/nologin\nuser:x:${INSIDE_ID}:${INSIDE_ID}:user:${WORKDIR}:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n`,
    "/etc/group": `root:x:0:\nuser:x:${INSIDE_ID}:\nnogroup:x:65534:\n`,
    "/etc/hosts": "127.0.0.1 localhost sandbox\n::1 localhost\n",
    "/etc/hostname": "sandbox\n",
  };
}

// bwrap now and then fails to set up the new namespace's loopback ("Failed RTM_NEWADDR") on a
// busy machine; a second try starts cleanly.
const START_ATTEMPTS = 3;

// What every jail of one bwrapJail() is made from.
interface JailSetup {
  readonly tools: Tools;
  readonly cgroups: BuildCgroups;
  readonly limits: BuildLimits;
  readonly env: Readonly<Record<string, string>>;
  readonly bindArgs: readonly string[];
}

async function openJail(setup: JailSetup): Promise<Jail> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await startJail(setup);
    } catch (error) {
      if (attempt >= START_ATTEMPTS) throw error;
    }
  }
}

async function startJail({ tools, cgroups, limits, env, bindArgs }: JailSetup): Promise<Jail> {
  const uid = pickUid();
  const cgroup = await cgroups.open(`build-${uid}`);
  const files = Object.entries(etcFiles());
  // fd 3: bwrap's info (the init's pid); fds 4..: the contents of the files above.
  const dataFd = (index: number): number => 4 + index;
  const tmpBytes = Math.max(16 * MIB, Math.floor(limits.diskBytes / 4));
  const bwrapArgs = [
    "--unshare-all",
    "--die-with-parent",
    "--new-session",
    "--uid",
    INSIDE_ID,
    "--gid",
    INSIDE_ID,
    "--hostname",
    "sandbox",
    ...bindArgs,
    ...files.flatMap(([path], index) => ["--ro-bind-data", String(dataFd(index)), path]),
    "--proc",
    "/proc",
    "--dev",
    "/dev",
    "--size",
    String(tmpBytes),
    "--tmpfs",
    "/dev/shm",
    "--size",
    String(limits.diskBytes),
    "--tmpfs",
    HOME,
    "--dir",
    WORKDIR,
    "--size",
    String(tmpBytes),
    "--tmpfs",
    "/tmp",
    "--remount-ro",
    "/",
    "--chdir",
    WORKDIR,
    "--clearenv",
    "--info-fd",
    "3",
    "--",
    // The build's first process waits on a pipe from the runner: if the runner dies without
    // --die-with-parent's signal arriving, the pipe's end still ends the build.
    // It says "ready" first: bwrap reports the init's pid before the mounts are in place, and
    // only runs this once they are.
    "/bin/sh",
    "-c",
    "echo ready; read -r _",
  ];
  // In the build's cgroup before bwrap unshares the cgroup namespace: inside, it is the root.
  const init = spawn(
    "/bin/sh",
    [
      "-c",
      JOIN_CGROUP,
      cgroup.initProcs,
      tools.setpriv,
      "--reuid",
      String(uid),
      "--regid",
      String(uid),
      "--clear-groups",
      "--",
      tools.bwrap,
      ...bwrapArgs,
    ],
    {
      env: {},
      // Its own session: a terminal's Ctrl-C reaches the runner, which ends builds in order.
      detached: true,
      stdio: ["pipe", "pipe", "pipe", "pipe", ...files.map((): "pipe" => "pipe")],
    },
  );
  ignoreStreamErrors(init);
  const stderr = collect(init.stdio[2]);
  for (const [index, [, content]] of files.entries()) {
    const pipe = init.stdio[dataFd(index)];
    if (pipe !== null && pipe !== undefined && "end" in pipe) pipe.end(content);
  }
  const failed = (what: string, cause?: unknown): SandboxError =>
    new SandboxError(
      "sandbox_create_failed",
      `local sandbox: ${what}${stderr().trim() === "" ? "" : `: ${stderr().trim()}`}`,
      { cause },
    );

  let initPid: number;
  let network: ChildProcess | undefined;
  try {
    initPid = await readInitPid(init);
    await readyLine(init);
    network = await startNetwork(tools, initPid);
    await refuseNetworks(tools, initPid);
  } catch (cause) {
    network?.kill("SIGKILL");
    init.kill("SIGKILL");
    await once(init, "exit").catch(() => undefined);
    await cgroup.remove().catch(() => undefined);
    throw failed("cannot start the build's sandbox", cause);
  }
  const root = `/proc/${initPid}/root`;
  const exited = once(init, "exit");
  let destroyed = false;

  const usage = watchUsage({
    procDir: `${root}/proc`,
    limits,
    cpuMicros: () => cgroup.cpuMicros(),
    onExceeded: async () => {
      await cgroup.killCommands();
      // Also reaches any process the cgroup lacks (none is known to): the uid is the build's.
      await killBuildProcesses(uid);
    },
  });

  // Every command joins the commands' cgroup first, then the build's namespaces.
  const enter = (cwd: string, argv: readonly string[]): string[] => [
    "-c",
    JOIN_CGROUP,
    cgroup.commandProcs,
    tools.nsenter,
    "-t",
    String(initPid),
    "-U",
    "-m",
    "-p",
    "-n",
    "-i",
    "-u",
    "-C",
    "-r",
    "-w",
    "-S",
    INSIDE_ID,
    "-G",
    INSIDE_ID,
    "--",
    // Absolute paths: the session's env may set PATH, and these must be the system's.
    "/usr/bin/setpriv",
    "--no-new-privs",
    "--",
    "/usr/bin/prlimit",
    `--nproc=${limits.processes}`,
    // A hard stop for one process between the samples that enforce the build's total.
    `--data=${limits.memoryBytes * 2}`,
    "--core=0",
    "--",
    "/usr/bin/env",
    "-C",
    cwd,
    "--",
    ...argv,
  ];

  return {
    workdir: WORKDIR,
    env,
    // Its uid is the build's alone.
    owns: (pid) => {
      try {
        return statSync(`/proc/${pid}`).uid === uid;
      } catch {
        return false;
      }
    },
    ended: () =>
      init.exitCode === null && init.signalCode === null
        ? undefined
        : destroyed
          ? "the build's sandbox has been removed"
          : "the build's sandbox has ended: a process of the build killed all of its processes (kill -1)",
    isDirectory: (path) =>
      // Through the init's root: a symlink inside resolves against the host, which only makes
      // this existence check wrong, never lets anything out; the command itself cds inside.
      stat(`${root}${path}`).then(
        (info) => info.isDirectory(),
        () => false,
      ),
    commandLine: (cwd, command) => ({
      file: "/bin/sh",
      args: enter(cwd, ["/bin/sh", "-c", command]),
      cwd: "/",
      relaysExit: true,
    }),
    async writeFile(target, content) {
      // Written by the build's own uid inside, so a symlink it planted cannot lead anywhere it
      // could not write itself; the check keeps writes inside the workdir as well.
      const script = `t=$(/usr/bin/realpath -m -- "$1") || exit 3; case "$t" in "$2"/*) ;; *) exit 3;; esac; /usr/bin/mkdir -p -- "\${t%/*}" && exec /usr/bin/cat > "$t"`;
      const writer = spawn(
        "/bin/sh",
        enter(WORKDIR, ["/bin/sh", "-c", script, "write", target, WORKDIR]),
        { env: {}, stdio: ["pipe", "ignore", "pipe"] },
      );
      ignoreStreamErrors(writer);
      const errors = collect(writer.stderr);
      const [code] = (await Promise.all([
        once(writer, "close"),
        new Promise<void>((resolve, reject) => {
          writer.stdin.on("error", reject);
          writer.stdin.end(content, resolve);
        }).catch(() => undefined),
      ]).then(([closed]) => closed)) as [number | null];
      if (code === 3)
        throw new SandboxError(
          "bad_path",
          `writeFile: ${JSON.stringify(target)} goes through a symlink that leaves the workdir`,
        );
      if (code !== 0) throw new Error(errors().trim() || `the writer exited with ${code}`);
    },
    async limitExceeded(startedAt) {
      const exceeded = await usage.exceededSince(startedAt);
      if (exceeded !== undefined) return describe(exceeded, limits);
      for (const dir of [HOME, "/tmp"]) {
        const info = await statfs(`${root}${dir}`).catch(() => undefined);
        if (info !== undefined && info.bavail * info.bsize < DISK_FULL_BYTES)
          return {
            name: "disk",
            message: `the build filled its disk (${dir === HOME ? limits.diskBytes / MIB : tmpBytes / MIB} MiB for ${dir})`,
          };
      }
      return undefined;
    },
    async destroy() {
      destroyed = true;
      usage.stop();
      // The init is the PID namespace's: when it dies, the kernel kills everything in it. Only
      // while it runs: a dead one's pid may be another process's by now.
      if (init.exitCode === null && init.signalCode === null) {
        try {
          process.kill(initPid, "SIGKILL");
        } catch {}
      }
      init.stdin?.end();
      await exited;
      network?.kill("SIGKILL");
      // Left behind, an empty group costs nothing and goes when the runner exits.
      await cgroup.remove().catch(() => undefined);
    },
  };
}

function describe(usage: BuildUsage, limits: BuildLimits): LimitExceeded {
  if (usage.over === "cpu")
    return {
      name: "cpu",
      message: `the build went over its CPU time limit (${limits.cpuSeconds} s, all its processes together); its processes were killed`,
    };
  return usage.over === "memory"
    ? {
        name: "memory",
        message: `the build went over its memory limit (${limits.memoryBytes / MIB} MiB); its processes were killed`,
      }
    : {
        name: "processes",
        message: `the build reached its limit of ${limits.processes} processes and threads; its processes were killed`,
      };
}

async function readInitPid(init: ChildProcess): Promise<number> {
  const info = init.stdio[3];
  if (info === null || info === undefined) throw new Error("no info pipe");
  let text = "";
  return new Promise((resolve, reject) => {
    init.once("exit", (code) => reject(new Error(`bwrap exited with code ${code}`)));
    info.on("data", (chunk: Buffer) => {
      text += chunk.toString("utf8");
      try {
        const pid = (JSON.parse(text) as { "child-pid"?: unknown })["child-pid"];
        if (typeof pid === "number") resolve(pid);
      } catch {
        // not whole yet
      }
    });
  });
}

async function readyLine(init: ChildProcess): Promise<void> {
  const stdout = init.stdio[1];
  if (stdout === null || stdout === undefined) throw new Error("no stdout pipe");
  let text = "";
  await new Promise<void>((resolve, reject) => {
    init.once("exit", (code) => reject(new Error(`bwrap exited with code ${code}`)));
    stdout.on("data", (chunk: Buffer) => {
      text += chunk.toString("utf8");
      if (text.includes("ready\n")) resolve();
    });
  });
  stdout.resume();
}

async function startNetwork(tools: Tools, initPid: number): Promise<ChildProcess> {
  const slirp = spawn(
    tools.slirp4netns,
    [
      "--configure",
      "--mtu=65520",
      "--disable-host-loopback",
      "--enable-sandbox",
      "--enable-seccomp",
      "--ready-fd=3",
      // Reads this pipe, which only closes when the runner dies: then it exits too.
      "--exit-fd=4",
      "--netns-type=path",
      `/proc/${initPid}/ns/net`,
      "tap0",
    ],
    { env: {}, detached: true, stdio: ["ignore", "ignore", "pipe", "pipe", "pipe"] },
  );
  ignoreStreamErrors(slirp);
  const stderr = collect(slirp.stdio[2]);
  const ready = slirp.stdio[3];
  if (ready === null || ready === undefined) throw new Error("no ready pipe");
  await new Promise<void>((resolve, reject) => {
    slirp.once("exit", (code) =>
      reject(new Error(`slirp4netns exited with code ${code}: ${stderr().trim()}`)),
    );
    ready.once("data", () => resolve());
  });
  slirp.removeAllListeners("exit");
  slirp.stdio[2]?.resume();
  return slirp;
}

async function refuseNetworks(tools: Tools, initPid: number): Promise<void> {
  const own = Object.values(networkInterfaces())
    .flat()
    .filter((address) => address !== undefined && address.family === "IPv4" && !address.internal)
    .map((address) => `${address?.address}/32`);
  const routes = [...REFUSED_NETWORKS, ...own].map((net) => `route add prohibit ${net}`).join("\n");
  const ip = spawn(tools.nsenter, ["-t", String(initPid), "-n", tools.ip, "-batch", "-"], {
    env: {},
    stdio: ["pipe", "ignore", "pipe"],
  });
  ignoreStreamErrors(ip);
  const stderr = collect(ip.stderr);
  ip.stdin.end(`${routes}\n`);
  const [code] = (await once(ip, "close")) as [number | null];
  if (code !== 0) throw new Error(`ip route: ${stderr().trim()}`);
}

/**
 * SIGKILL to every process of the build's uid but the outer bwrap, its init (PID 1 in its
 * namespace) and the init's first child (PID 2, which waits on the runner's pipe): the end of
 * any of them would end the session.
 */
async function killBuildProcesses(uid: number): Promise<void> {
  for (const entry of await readdir("/proc").catch(() => [])) {
    if (!/^\d+$/.test(entry)) continue;
    const owner = await stat(`/proc/${entry}`).then(
      (info) => info.uid,
      () => undefined,
    );
    if (owner !== uid) continue;
    const status = await readFile(`/proc/${entry}/status`, "utf8").catch(() => "");
    // The outer bwrap has the uid too but lives in the host's PID namespace only (one NSpid).
    const insidePid = /^NSpid:[ \t]+\d+[ \t](?:.*[ \t])?(\d+)$/m.exec(status)?.[1];
    if (insidePid === undefined || insidePid === "1" || insidePid === "2") continue;
    try {
      process.kill(Number(entry), "SIGKILL");
    } catch {}
  }
}

/**
 * Node's stdio pipes are socket pairs: one the helper closed may answer a read or write with
 * ECONNRESET or EPIPE, which unhandled would crash the runner. The helper's exit says enough.
 */
function ignoreStreamErrors(child: ChildProcess): void {
  for (const stream of child.stdio) stream?.on("error", () => undefined);
}

function collect(stream: NodeJS.ReadableStream | null | undefined): () => string {
  let text = "";
  stream?.on("data", (chunk: Buffer) => {
    if (text.length < 4096) text += chunk.toString("utf8");
  });
  return () => text;
}
