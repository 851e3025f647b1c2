/**
 * The preflight of `./pesan test` (tools/preflight), run as a user runs it: a machine without
 * nginx (a PATH without the sbin directories) in the mode that never installs
 * (PESAN_TEST_NO_INSTALL=1, which a root run also obeys), so nothing is apt-get installed here.
 */
import { spawnSync } from "node:child_process";
import { dirname, join } from "node:path";
import { REPO_ROOT } from "@pesan/cluster";

const PREFLIGHT = join(REPO_ROOT, "tools/preflight/src/preflight.ts");
// node and pnpm, and the ordinary directories: /usr/sbin (nginx) and /sbin are not on it.
const PNPM = spawnSync("sh", ["-c", "command -v pnpm"], { encoding: "utf8" }).stdout.trim();
const NO_NGINX_PATH = [dirname(process.execPath), dirname(PNPM), "/usr/local/bin", "/usr/bin", "/bin"].join(":");
const OTHERS_LEFT_OUT = "docker,sshd,chromium,tmux,patroni";
const root = process.getuid?.() === 0;

function run(cmd: string, args: string[], env: NodeJS.ProcessEnv) {
  const r = spawnSync(cmd, args, { cwd: REPO_ROOT, encoding: "utf8", timeout: 120_000, env: { HOME: process.env.HOME, ...env } });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

const NGINX_MESSAGE = [
  "pesan test: cannot run every test; missing:",
  "  nginx: nginx (the load-balancing tests run nginx in front of the gateways)",
  `Install: ${root ? "" : "sudo "}apt-get install -y nginx`,
  "Or leave their tests out (they are then listed as untested): ./pesan test --without nginx",
  "",
].join("\n");

test("without nginx, the preflight prints one message naming it and the command that installs it, exit code 1", () => {
  const r = run(process.execPath, [PREFLIGHT], { PATH: NO_NGINX_PATH, PESAN_TEST_NO_INSTALL: "1", PESAN_TEST_WITHOUT: OTHERS_LEFT_OUT });
  expect(r).toEqual({ code: 1, stdout: "", stderr: NGINX_MESSAGE });
});

test("./pesan test stops there, before any test runs", () => {
  const r = run(join(REPO_ROOT, "pesan"), ["test", "--without", OTHERS_LEFT_OUT], { PATH: NO_NGINX_PATH, PESAN_TEST_NO_INSTALL: "1" });
  expect(r.code).toBe(1);
  expect(r.stderr).toContain(NGINX_MESSAGE);
  // Neither the type check nor jest started.
  expect(r.stdout + r.stderr).not.toMatch(/tsc --noEmit|Tests:|PASS|FAIL/);
});

test("with nginx on the PATH, the same preflight passes silently", () => {
  const r = run(process.execPath, [PREFLIGHT], { PATH: `${NO_NGINX_PATH}:/usr/sbin:/sbin`, PESAN_TEST_NO_INSTALL: "1", PESAN_TEST_WITHOUT: OTHERS_LEFT_OUT });
  expect(r).toEqual({ code: 0, stdout: "", stderr: "" });
});

test("--untested lists what the --without list leaves untested, file by file", () => {
  const r = run(process.execPath, [PREFLIGHT, "--untested", "--without", "chromium"], { PATH: NO_NGINX_PATH, PESAN_TEST_WITHOUT: "docker" });
  expect(r.code).toBe(0);
  expect(r.stdout).toBe(
    [
      "pesan test: UNTESTED (left out with --without chromium,docker):",
      "  chromium: test/monitor-dashboard.test.ts",
      "  docker: test/compose/compose.test.ts; test/compose/two-clusters.test.ts; test/compose/ha.test.ts; test/deploy.test.ts: the Compose files checked by docker-compose config",
      "",
    ].join("\n"),
  );
});

test("a name --without does not know, or one that cannot be left out, is exit code 2 naming the valid ones", () => {
  for (const [flag, bad] of [["--without=dockr", "dockr"], ["--without=openssl", "openssl"]] as const) {
    const r = run(process.execPath, [PREFLIGHT, flag], { PATH: NO_NGINX_PATH, PESAN_TEST_NO_INSTALL: "1" });
    expect(r).toEqual({ code: 2, stdout: "", stderr: `pesan test: --without: ${bad} cannot be left out; the names are sshd, chromium, nginx, docker, tmux, patroni\n` });
  }
  const r = run(join(REPO_ROOT, "pesan"), ["test", "--without", "nosuch"], { PATH: NO_NGINX_PATH, PESAN_TEST_NO_INSTALL: "1" });
  expect(r.code).toBe(2);
  expect(r.stderr).toContain("--without: nosuch cannot be left out");
});
