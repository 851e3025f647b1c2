/**
 * Every entry point a user runs answers the same way (issue 14 item 7): `--help` is the usage
 * on stdout and exit code 0, `--version` is the version of the root package.json and exit code
 * 0, an unknown flag is the usage on stderr and exit code 2. Each runs as a real process with
 * Postgres and Redis pointed at a closed port: an entry point that read its configuration or
 * connected anywhere before answering would fail here instead of answering.
 */
import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { REPO_ROOT } from "@pesan/cluster";

const VERSION = (JSON.parse(readFileSync(join(REPO_ROOT, "package.json"), "utf8")) as { version: string }).version;
const NODE = process.execPath;
const PESAN = join(REPO_ROOT, "pesan");

interface EntryPoint {
  name: string;
  cmd: string[];
  /** What --version prints before the number. */
  versionName?: string;
}

const ENTRY_POINTS: EntryPoint[] = [
  { name: "./pesan", cmd: [PESAN] },
  { name: "./pesan test", cmd: [PESAN, "test"] },
  { name: "./pesan start (through pnpm)", cmd: [PESAN, "start"] },
  { name: "./pesan chat (through pnpm)", cmd: [PESAN, "chat"], versionName: "pesan chat" },
  { name: "./pesan images (through pnpm)", cmd: [PESAN, "images"] },
  { name: "tools/images/build.sh", cmd: [join(REPO_ROOT, "tools/images/build.sh")] },
  { name: "udp-gateway", cmd: [NODE, "services/udp-gateway/src/main.ts"] },
  { name: "router", cmd: [NODE, "services/router/src/main.ts"] },
  { name: "peer-sync", cmd: [NODE, "services/peer-sync/src/main.ts"] },
  { name: "monitor-bot", cmd: [NODE, "services/monitor-bot/src/main.ts"] },
  { name: "monitor-bot --check", cmd: [NODE, "services/monitor-bot/src/main.ts", "--check"] },
  { name: "embedded (pnpm start)", cmd: [NODE, "apps/embedded/src/main.ts"] },
  { name: "chat", cmd: [NODE, "packages/client/src/chat.ts"], versionName: "pesan chat" },
  { name: "cluster", cmd: [NODE, "tools/cluster/src/cluster-cli.ts"] },
  { name: "topology", cmd: [NODE, "tools/cluster/src/topology-cli.ts"] },
  { name: "nginx:render", cmd: [NODE, "tools/cluster/src/nginx-render.ts"] },
  { name: "bench", cmd: [NODE, "tools/cluster/src/bench.ts"] },
  { name: "embedded-measure", cmd: [NODE, "tools/cluster/src/embedded-measure.ts"] },
  { name: "bench --mode soak", cmd: [NODE, "tools/cluster/src/bench.ts", "--mode", "soak"] },
  { name: "bench --mode cross", cmd: [NODE, "tools/cluster/src/bench.ts", "--mode", "cross"] },
  { name: "bench --mode failover", cmd: [NODE, "tools/cluster/src/bench.ts", "--mode", "failover"] },
  { name: "the test preflight", cmd: [NODE, "tools/preflight/src/preflight.ts"] },
];

// Nothing listens on port 1: a connection attempt fails at once.
const ENV: NodeJS.ProcessEnv = {
  ...process.env,
  DATABASE_URL: "postgres://nobody@127.0.0.1:1/none",
  REDIS_URL: "redis://127.0.0.1:1",
  MONITOR_CONFIG: "/nonexistent/monitor.yaml",
  PESAN_CONFIG_FILE: "",
};

function run(cmd: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const p = spawn(cmd[0]!, cmd.slice(1), { cwd: REPO_ROOT, env: ENV, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    p.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    p.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    // Anything still running after this started something it should not have.
    const timer = setTimeout(() => p.kill("SIGKILL"), 30_000);
    p.on("error", reject);
    p.on("close", (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

test.each(ENTRY_POINTS)("$name: --help, --version, --bogus", async ({ cmd, versionName }) => {
  const [help, version, bogus] = await Promise.all([run([...cmd, "--help"]), run([...cmd, "--version"]), run([...cmd, "--bogus"])]);

  expect({ code: help.code, usage: /^usage: /m.test(help.stdout) }).toEqual({ code: 0, usage: true });
  expect({ code: version.code, stdout: version.stdout }).toEqual({ code: 0, stdout: `${versionName ?? "pesan"} ${VERSION}\n` });
  expect({ code: bogus.code, stdout: bogus.stdout, usage: /^usage: /m.test(bogus.stderr), named: bogus.stderr.includes("--bogus") }).toEqual({ code: 2, stdout: "", usage: true, named: true });
}, 90_000);
