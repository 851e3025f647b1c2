/**
 * What the tests need from the machine, beyond Node and the npm packages: one table, read by
 * the preflight of `./pesan test` (install, start, or stop with one message), by the tests
 * themselves (a missing tool fails the file naming it; see test/support/needs.ts) and by
 * jest.config.cjs (the files of a tool the run left out with `--without` are not run).
 *
 * Loaded natively by Node too (jest.config.cjs requires it), so: no import.meta, no imports
 * beyond node:*.
 */
import { spawnSync } from "node:child_process";
import { existsSync, readdirSync } from "node:fs";
import { delimiter, join } from "node:path";

/** One thing a need is made of: a command on PATH, a file, or the Docker engine answering. */
export type Check = { command: string } | { path: string } | { dockerEngine: true };

export interface Part {
  /** How the message names it. */
  label: string;
  check: Check;
  /** The Debian package that brings it; undefined for the Docker engine (started, not installed). */
  package?: string;
}

export interface Need {
  /** The name `--without` takes. */
  name: string;
  /** Whether `--without` may leave it out; the others are needed by tests that cannot be left out. */
  optional: boolean;
  /** What needs it, for the messages. */
  why: string;
  parts: Part[];
  /** Test files that need it as a whole: not run at all when it is left out. */
  files: string[];
  /** Single tests inside other files that need it (skipped with test.skip when it is left out). */
  tests: string[];
}

export const NEEDS: readonly Need[] = [
  {
    name: "sshd",
    optional: true,
    why: "the monitor's SSH probes run against a real sshd",
    parts: [
      { label: "/usr/sbin/sshd", check: { path: "/usr/sbin/sshd" }, package: "openssh-server" },
      { label: "/usr/bin/ssh-keygen", check: { path: "/usr/bin/ssh-keygen" }, package: "openssh-client" },
    ],
    files: ["test/monitor-ssh.test.ts", "test/monitor-dashboard.test.ts"],
    tests: ["test/monitor-telegram.test.ts: /ram and /cpu read over real SSH"],
  },
  {
    name: "chromium",
    optional: true,
    why: "the dashboard test drives a headless Chromium",
    parts: [{ label: "/usr/bin/chromium", check: { path: "/usr/bin/chromium" }, package: "chromium" }],
    files: ["test/monitor-dashboard.test.ts"],
    tests: [],
  },
  {
    name: "nginx",
    optional: true,
    why: "the load-balancing tests run nginx in front of the gateways",
    parts: [
      { label: "nginx", check: { command: "nginx" }, package: "nginx" },
      { label: "nginx's stream module", check: { path: "/usr/lib/nginx/modules/ngx_stream_module.so" }, package: "libnginx-mod-stream" },
    ],
    files: ["test/nginx.test.ts"],
    tests: [],
  },
  {
    name: "docker",
    optional: true,
    why: "the Compose end-to-end tests build the images and run docker-compose.yml on a Docker engine",
    parts: [
      { label: "docker", check: { command: "docker" }, package: "docker.io" },
      { label: "docker-compose", check: { command: "docker-compose" }, package: "docker-compose" },
      // ./pesan images makes Debian base images with it when Docker Hub cannot be reached.
      { label: "debootstrap", check: { command: "debootstrap" }, package: "debootstrap" },
      { label: "a running Docker engine", check: { dockerEngine: true } },
    ],
    files: ["test/compose/compose.test.ts", "test/compose/two-clusters.test.ts", "test/compose/ha.test.ts"],
    tests: ["test/deploy.test.ts: the Compose files checked by docker-compose config"],
  },
  {
    name: "tmux",
    optional: true,
    why: "the chat CLI test types into a real terminal",
    parts: [{ label: "tmux", check: { command: "tmux" }, package: "tmux" }],
    files: ["test/chat-cli.test.ts"],
    tests: [],
  },
  {
    name: "patroni",
    optional: true,
    why: "the Postgres failover test runs a primary and a replica under Patroni, with etcd",
    parts: [
      { label: "patroni", check: { command: "patroni" }, package: "patroni" },
      { label: "etcd", check: { command: "etcd" }, package: "etcd-server" },
      { label: "etcdctl", check: { command: "etcdctl" }, package: "etcd-client" },
    ],
    files: ["test/postgres-failover.test.ts"],
    tests: [],
  },
  {
    name: "openssl",
    optional: false,
    why: "the peer-sync TLS test makes its certificate",
    parts: [{ label: "openssl", check: { command: "openssl" }, package: "openssl" }],
    files: [],
    tests: [],
  },
  {
    name: "postgres",
    optional: false,
    why: "the Postgres outage test runs a Postgres cluster of its own",
    parts: [{ label: "/usr/lib/postgresql/*/bin/pg_ctl", check: { path: "/usr/lib/postgresql/*/bin/pg_ctl" }, package: "postgresql" }],
    files: [],
    tests: [],
  },
  {
    name: "redis",
    optional: false,
    why: "the Redis outage tests run redis-servers of their own (one to restart; Sentinel and Cluster sets to fail over, the cluster made by redis-cli)",
    parts: [
      { label: "redis-server", check: { command: "redis-server" }, package: "redis-server" },
      { label: "redis-cli", check: { command: "redis-cli" }, package: "redis-tools" },
    ],
    files: [],
    tests: [],
  },
];

export const OPTIONAL_NAMES: readonly string[] = NEEDS.filter((n) => n.optional).map((n) => n.name);

export function need(name: string): Need {
  const n = NEEDS.find((x) => x.name === name);
  if (!n) throw new Error(`no such test need: ${name}`);
  return n;
}

/**
 * The names in a `--without` list (comma separated, as PESAN_TEST_WITHOUT holds it), deduplicated
 * in table order. An unknown name, or one that cannot be left out, is an error naming the valid ones.
 */
export function parseWithout(list: string | undefined): string[] {
  const names = (list ?? "")
    .split(",")
    .map((s) => s.trim())
    .filter((s) => s !== "");
  const bad = names.filter((s) => !OPTIONAL_NAMES.includes(s));
  if (bad.length > 0) throw new Error(`--without: ${bad.join(", ")} cannot be left out; the names are ${OPTIONAL_NAMES.join(", ")}`);
  return OPTIONAL_NAMES.filter((n) => names.includes(n));
}

/** The jest testPathIgnorePatterns for the files of the needs left out. */
export function ignoredTestPatterns(without: string | undefined): string[] {
  const files = new Set(parseWithout(without).flatMap((n) => need(n).files));
  return [...files].map((f) => `<rootDir>/${f.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}$`);
}

/** What `--without` left untested, one line per need; empty when nothing was left out. */
export function untestedSummary(without: string[]): string {
  if (without.length === 0) return "";
  const lines = without.map((name) => {
    const n = need(name);
    return `  ${name}: ${[...n.files, ...n.tests].join("; ")}`;
  });
  return `pesan test: UNTESTED (left out with --without ${without.join(",")}):\n${lines.join("\n")}\n`;
}

/** How the machine is looked at; the preflight's own test swaps PATH through the environment. */
export interface Probe {
  hasCommand(command: string): boolean;
  hasPath(pattern: string): boolean;
  dockerAnswers(): boolean;
}

/** A command on the given PATH (as `command -v` finds it), a file (one `*` segment allowed), `docker info`. */
export function systemProbe(env: NodeJS.ProcessEnv = process.env): Probe {
  return {
    hasCommand: (command) => (env.PATH ?? "").split(delimiter).some((dir) => dir !== "" && existsSync(join(dir, command))),
    hasPath: (pattern) => {
      const star = pattern.split("/").indexOf("*");
      if (star < 0) return existsSync(pattern);
      const segs = pattern.split("/");
      const parent = segs.slice(0, star).join("/") || "/";
      if (!existsSync(parent)) return false;
      return readdirSync(parent).some((entry) => existsSync([...segs.slice(0, star), entry, ...segs.slice(star + 1)].join("/")));
    },
    dockerAnswers: () => spawnSync("docker", ["info"], { stdio: "ignore", env, timeout: 15_000 }).status === 0,
  };
}

export interface Missing {
  need: Need;
  parts: Part[];
}

/** The parts of the given needs the machine lacks (the engine is asked only when docker is installed). */
export function findMissing(needs: readonly Need[], probe: Probe): Missing[] {
  const out: Missing[] = [];
  for (const n of needs) {
    const parts: Part[] = [];
    for (const p of n.parts) {
      const c = p.check;
      const ok =
        "command" in c ? probe.hasCommand(c.command) : "path" in c ? probe.hasPath(c.path) : parts.some((q) => q.package === "docker.io") ? false : probe.dockerAnswers();
      if (!ok) parts.push(p);
    }
    if (parts.length > 0) out.push({ need: n, parts });
  }
  return out;
}

/** The Debian packages that bring the missing parts, in table order, each once. */
export function packagesFor(missing: Missing[]): string[] {
  return [...new Set(missing.flatMap((m) => m.parts.flatMap((p) => (p.package ? [p.package] : []))))];
}

/** Whether the Docker engine not answering is among what is missing (so: start it). */
export function engineMissing(missing: Missing[]): boolean {
  return missing.some((m) => m.parts.some((p) => "dockerEngine" in p.check));
}

/** The one line printed before installing: what and why. */
export function installLine(missing: Missing[]): string {
  const why = missing.filter((m) => m.parts.some((p) => p.package)).map((m) => `${m.need.name}: ${m.need.why}`);
  return `pesan test: installing ${packagesFor(missing).join(" ")} with apt-get (${why.join("; ")})\n`;
}

/**
 * The one message when something is still missing and this run cannot fix it: what, what needs
 * it, the command that installs it, and how to leave the optional ones out.
 */
export function missingMessage(missing: Missing[], o: { root: boolean }): string {
  const sudo = o.root ? "" : "sudo ";
  const lines = ["pesan test: cannot run every test; missing:"];
  for (const m of missing) lines.push(`  ${m.need.name}: ${m.parts.map((p) => p.label).join(", ")} (${m.need.why})`);
  const pkgs = packagesFor(missing);
  if (pkgs.length > 0) lines.push(`Install: ${sudo}apt-get install -y ${pkgs.join(" ")}`);
  if (engineMissing(missing)) lines.push(`Start the Docker engine: ${sudo}systemctl start docker (or, without systemd: ${sudo}dockerd >/var/log/dockerd.log 2>&1 &)`);
  const optional = missing.filter((m) => m.need.optional).map((m) => m.need.name);
  if (optional.length > 0) lines.push(`Or leave their tests out (they are then listed as untested): ./pesan test --without ${optional.join(",")}`);
  return `${lines.join("\n")}\n`;
}
