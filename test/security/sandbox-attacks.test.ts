import { randomUUID } from "node:crypto";
import { rmSync, writeFileSync } from "node:fs";
import { networkInterfaces, tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Stack, startStack } from "../../tools/dev/stack.ts";
import { filesNamed, hostProcesses, waitUntil } from "./host.ts";
import { step, type UserClient, userClient } from "./jobs.ts";

// A hostile signed-in user's builds against the real stack (tools/dev/stack.ts): the Worker in
// workerd, the Queue, the runner process and its isolated local sandbox. Every attack runs as a
// job's command and prints what it got; the assertions are on the job's log as a viewer reads
// it, and on the host.
let stack: Stack;
let attacker: UserClient;
let victim: UserClient;

beforeAll(async () => {
  stack = await startStack({ runnerOutput: "ignore" });
  attacker = userClient(stack, "user_attacker");
  victim = userClient(stack, "user_victim");
}, 120_000);

afterAll(async () => {
  await stack?.stop();
}, 60_000);

/** What the runner holds that a build must never get. */
function runnerSecrets(): string[] {
  return [stack.runnerToken, stack.bridge.token];
}

/** Every base64 run in the log, decoded. */
function decodedBase64(log: string): string {
  return [...log.matchAll(/B64:([A-Za-z0-9+/=]*)/g)]
    .map((match) => Buffer.from(match[1] ?? "", "base64").toString("latin1"))
    .join("\n");
}

describe("a hostile build", () => {
  it("cannot read the runner's environment, processes or files, not even as base64", async () => {
    const hostTmpMarker = `host-tmp-${randomUUID()}`;
    writeFileSync(join(tmpdir(), hostTmpMarker), "the host's");
    const jobId = await attacker.submit({
      steps: [
        step(
          "Looking around",
          [
            'echo "PPID=$PPID"',
            'echo "B64:$(base64 -w0 /proc/$PPID/environ 2>/dev/null)"',
            'echo "B64:$(base64 -w0 /proc/1/environ 2>/dev/null)"',
            'for f in /proc/[0-9]*/environ; do echo "B64:$(base64 -w0 "$f" 2>/dev/null)"; done',
            'echo "B64:$(cat /proc/[0-9]*/cmdline 2>/dev/null | base64 -w0)"',
            'echo "B64:$(env | base64 -w0)"',
            // The runner's files, named in base64 so this command line does not name them itself.
            `for f in $(echo ${Buffer.from(`${process.cwd()}/worker-build-runner/main.ts /root /work /proc/${stack.runner.child.pid}/environ`).toString("base64")} | base64 -d); do [ -e "$f" ] && echo "VISIBLE $f"; done`,
            // System directories are read-only; the host's /tmp is not its /tmp.
            `for d in /usr /etc /bin /opt/node/bin /; do touch "$d/planted" 2>/dev/null && echo "WROTE $d"; done`,
            `[ -e /tmp/${hostTmpMarker} ] && echo "VISIBLE host tmp"`,
            "echo UID=$(id -u) HOST=$(hostname)",
          ].join("; "),
        ),
      ],
    });
    const { status, log } = await attacker.finished(jobId);
    expect(status).toBe("ready");
    const seen = `${log}\n${decodedBase64(log)}`;
    expect(log).toContain("UID=1000 HOST=sandbox");
    // Its parent is outside its PID namespace (0), its PID 1 is the sandbox's init.
    expect(log).toContain("PPID=0");
    expect(log).not.toContain("VISIBLE");
    expect(log).not.toContain("WROTE");
    rmSync(join(tmpdir(), hostTmpMarker));
    expect(decodedBase64(log)).not.toContain("worker-build-runner");
    for (const secret of runnerSecrets()) expect(seen).not.toContain(secret);
    for (const name of ["RUNNER_TOKEN", "UPSTASH_REDIS_REST_TOKEN", "UPSTASH_REDIS_REST_URL"])
      expect(seen).not.toContain(name);
  });

  it("cannot connect to any port of the host: runner, bridge, Redis, Worker", async () => {
    const ports = [
      Number(new URL(stack.runner.url).port),
      stack.bridge.port,
      stack.redisServer.port,
      Number(new URL(stack.workerUrl).port),
    ];
    const hosts = [
      "127.0.0.1",
      "10.0.2.2", // slirp4netns's name for the host's loopback
      ...Object.values(networkInterfaces())
        .flat()
        .filter((address) => address?.family === "IPv4" && !address.internal)
        .map((address) => address?.address ?? ""),
    ];
    const probe = `
const net = require("node:net");
const targets = ${JSON.stringify(hosts.flatMap((host) => ports.map((port) => [host, port])))};
Promise.all(targets.map(([host, port]) => new Promise((resolve) => {
  const socket = net.connect({ host, port, timeout: 3000 });
  socket.on("connect", () => { socket.destroy(); resolve(host + ":" + port + " CONNECTED"); });
  socket.on("timeout", () => { socket.destroy(); resolve(host + ":" + port + " timeout"); });
  socket.on("error", (error) => resolve(host + ":" + port + " " + error.code));
}))).then((results) => console.log(results.join("\\n")));
`;
    const jobId = await attacker.submit({
      files: { "probe.js": probe },
      steps: [step("Probing the host", "node probe.js")],
    });
    const { status, log } = await attacker.finished(jobId);
    expect(status).toBe("ready");
    const results = log.split("\n").filter((line) => /\d+\.\d+\.\d+\.\d+:\d+ /.test(line));
    expect(results).toHaveLength(hosts.length * ports.length);
    for (const line of results) expect(line).not.toContain("CONNECTED");
  });

  it("cannot kill the runner; kill -9 1 does nothing and kill -9 -1 ends only its own build", async () => {
    const runnerPid = stack.runner.child.pid ?? 0;
    const jobId = await attacker.submit({
      steps: [
        step("Killing", `kill -9 ${runnerPid}; kill -9 1; echo "init survived"; kill -9 -1`),
        step("Afterwards", "echo unreachable"),
      ],
    });
    const { status, log } = await attacker.finished(jobId);
    expect(status).toBe("failed");
    expect(log).toContain("kill: No such process");
    expect(log).toContain("init survived");
    expect(log).not.toContain("unreachable");
    expect(stack.runner.child.exitCode).toBeNull();
    expect((await fetch(`${stack.runner.url}/healthz`)).status).toBe(200);
    // The runner goes on with the next job.
    const next = await victim.submit({ steps: [step("Building", "echo next job ran")] });
    expect(await victim.finished(next)).toMatchObject({ status: "ready" });
  });

  it("leaves nothing behind: a setsid or double-forked survivor dies with the job, and cannot see the next build", async () => {
    const marker = `survivor-${randomUUID()}`;
    const victimSecret = `victim-secret-${randomUUID()}`;
    // The victim's build runs while the attacker's looks for it.
    const victimJob = await victim.submit({
      secrets: { VICTIM_TOKEN: victimSecret },
      steps: [step("Victim building", "echo victim started; sleep 4; echo victim done")],
    });
    await waitUntil("the victim's build to run", 30_000, async () =>
      (await victim.status(victimJob)) === "running" ? true : undefined,
    );
    const attackerJob = await attacker.submit({
      steps: [
        step(
          "Planting survivors",
          [
            `echo planted > ${marker}`,
            `setsid sh -c 'while :; do cat /proc/*/environ > /dev/null 2>&1; sleep 0.2; done; : ${marker}' > /dev/null 2>&1 &`,
            `(sh -c 'sleep 600; : ${marker}' > /dev/null 2>&1 &) &`,
            `nohup sh -c 'trap "" TERM HUP; sleep 600; : ${marker}' > /dev/null 2>&1 &`,
            `echo "FOUND: $(cat /proc/*/environ 2>/dev/null | tr '\\0' '\\n' | grep -c victim-secret)"`,
          ].join("\n"),
        ),
        // Long enough for the test to see the survivors on the host while the job runs.
        step("Waiting", "sleep 3"),
      ],
    });
    // While the attacker's job runs its survivors are there, on the host as well.
    await waitUntil("the survivors to start", 30_000, async () =>
      hostProcesses(marker).length >= 3 ? true : undefined,
    );
    const { status, log } = await attacker.finished(attackerJob);
    expect(status).toBe("ready");
    expect(log).toContain("FOUND: 0");
    expect(log).not.toContain(victimSecret);
    // Once its job has ended, none of them is left.
    await waitUntil("the survivors to be gone", 10_000, async () =>
      hostProcesses(marker).length === 0 ? true : undefined,
    );
    const victimEnd = await victim.finished(victimJob);
    expect(victimEnd.status).toBe("ready");
    expect(victimEnd.log).toContain("victim done");
    // No workdir on the host: the isolated sandbox's is a tmpfs in the build's own mount
    // namespace. (Other builds on this machine may make /tmp/build-* dirs: look for this one's file.)
    expect(filesNamed(marker)).toEqual([]);
  });

  it("installs a real package from the npm registry inside the sandbox", async () => {
    const jobId = await attacker.submit({
      files: {
        "package.json": JSON.stringify({
          name: "sandboxed-app",
          version: "1.0.0",
          private: true,
          dependencies: { "is-number": "7.0.0" },
        }),
      },
      steps: [
        step("Installing dependencies", "npm install --no-audit --no-fund"),
        step("Using it", `node -e 'console.log("is-number says " + require("is-number")(42))'`),
      ],
    });
    const { status, log } = await attacker.finished(jobId);
    expect(log).toContain("added 1 package");
    expect(log).toContain("is-number says true");
    expect(status).toBe("ready");
  });
});

describe("limits", () => {
  it("a build over its process limit fails with a system line naming it", async () => {
    const jobId = await attacker.submit({
      steps: [step("Forking", "for i in $(seq 2000); do sleep 30 & done; wait")],
    });
    const { status, log } = await attacker.finished(jobId);
    expect(status).toBe("failed");
    expect(log, log).toMatch(/Forking stopped: the build reached its limit of 512 processes/);
  });
});
