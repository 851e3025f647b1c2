/**
 * The deployment files, checked without a Docker engine: the Dockerfile with dockerfile-utils'
 * linter, the Compose file with Debian's docker-compose and with dclint (compose-spec schema
 * and best practices).
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { validate } from "dockerfile-utils";
import { REPO_ROOT } from "@pesan/cluster";
import { testNeeding } from "./support/needs.ts";

// docker-compose is part of the docker need: without it this file fails naming it; --without
// docker skips these checks (no engine needed for them).
const testCompose = testNeeding("docker", ["docker-compose"]);

test("the Dockerfile has no lint findings, and every service has a target", () => {
  const text = readFileSync(join(REPO_ROOT, "Dockerfile"), "utf8");
  const findings = validate(text).map((d) => `line ${d.range.start.line + 1}: ${d.message}`);
  expect(findings).toEqual([]);
  for (const target of ["udp-gateway", "router", "monitor-bot", "peer-sync", "embedded"]) expect(text).toMatch(new RegExp(`^FROM \\S+ AS ${target}$`, "m"));
  // Non-root, health-checked, pinned base image.
  expect(text).toMatch(/^USER node$/m);
  expect(text).toMatch(/^HEALTHCHECK /m);
  expect(text).toMatch(/^ARG NODE_IMAGE=node:24\.\d+\.\d+-/m);
});

test.each(["docker-compose.yml", "docker-compose.two-clusters.yml", "docker-compose.ha.yml"])("%s passes dclint", (file) => {
  const r = spawnSync(
    process.execPath,
    [
      join(REPO_ROOT, "node_modules/dclint/bin/dclint.cjs"),
      join(REPO_ROOT, file),
      // A top-level `name:` is rejected by docker-compose 1.x, which we also support.
      "--disable-rule",
      "require-project-name-field",
      // The HTTP port binds to ${PESAN_HTTP_BIND:-127.0.0.1}, which dclint cannot evaluate.
      "--disable-rule",
      "no-unbound-port-interfaces",
      // build + image on purpose: `image` names what ./pesan images (or `build`) makes, so
      // `up` uses the built image instead of building again.
      "--disable-rule",
      "no-build-and-image",
    ],
    { encoding: "utf8" },
  );
  expect(r.stdout + r.stderr).not.toMatch(/error|warning/);
  expect(r.status).toBe(0);
});

const COMPOSE_FILES = ["docker-compose.yml", "docker-compose.two-clusters.yml", "docker-compose.ha.yml"];
const SECRETS: Record<string, string[]> = {
  "docker-compose.yml": ["POSTGRES_PASSWORD", "PESAN_PROBE_PASSWORD"],
  "docker-compose.two-clusters.yml": ["POSTGRES_PASSWORD", "PESAN_SYNC_KEY_AB"],
  "docker-compose.ha.yml": ["POSTGRES_PASSWORD", "PESAN_PG_REPLICATION_PASSWORD", "PESAN_PATRONI_API_PASSWORD", "PESAN_PROBE_PASSWORD"],
};
/** The base images each file takes from a variable (./pesan images selects them). */
const IMAGE_VARIABLES: Record<string, string[]> = {
  "docker-compose.yml": ["PESAN_POSTGRES_IMAGE", "PESAN_REDIS_IMAGE", "PESAN_NGINX_IMAGE", "PESAN_NODE_IMAGE"],
  "docker-compose.two-clusters.yml": ["PESAN_POSTGRES_IMAGE", "PESAN_REDIS_IMAGE", "PESAN_NGINX_IMAGE", "PESAN_NODE_IMAGE"],
  "docker-compose.ha.yml": ["PESAN_PATRONI_IMAGE", "PESAN_REDIS_IMAGE", "PESAN_NGINX_IMAGE", "PESAN_NODE_IMAGE"],
};

testCompose.each(COMPOSE_FILES)("%s has no default secret: docker-compose refuses to start without each, naming it", (file) => {
  const text = readFileSync(join(REPO_ROOT, file), "utf8");
  expect(text).not.toMatch(/change-me/i);
  // Run from an empty directory, so a developer's .env cannot fill them in.
  const dir = mkdtempSync(join(tmpdir(), "pesan-compose-"));
  try {
    for (const missing of SECRETS[file]!) {
      const env: NodeJS.ProcessEnv = { PATH: process.env.PATH };
      for (const s of SECRETS[file]!) if (s !== missing) env[s] = "x".repeat(40);
      const r = spawnSync("docker-compose", ["--project-directory", dir, "-f", join(REPO_ROOT, file), "config", "-q"], { encoding: "utf8", env });
      expect(r.status).not.toBe(0);
      expect(r.stderr).toContain(`set ${missing} in .env`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

testCompose.each(COMPOSE_FILES)("%s: every service rotates its logs, takes its image from a variable or pesan/, and the ones with children run an init", (file) => {
  const env = { ...process.env, POSTGRES_PASSWORD: "x".repeat(40), PESAN_PROBE_PASSWORD: "x".repeat(40), PESAN_SYNC_KEY_AB: "x".repeat(64), PESAN_PG_REPLICATION_PASSWORD: "x".repeat(40), PESAN_PATRONI_API_PASSWORD: "x".repeat(40) };
  const r = spawnSync("docker-compose", ["-f", join(REPO_ROOT, file), "config"], { encoding: "utf8", env });
  expect(r.status).toBe(0);
  const raw = readFileSync(join(REPO_ROOT, file), "utf8");
  // docker-compose config prints YAML; each service block starts at two spaces of indent.
  const blocks = r.stdout.split(/\n(?= {2}[a-z][\w-]*:\n)/).filter((b) => /^ {2}[a-z]/.test(b) && b.includes("\n    image:"));
  expect(blocks.length).toBeGreaterThanOrEqual(6);
  for (const b of blocks) {
    const name = b.trim().split(":")[0];
    expect([name, /driver: json-file/.test(b) && /max-size:/.test(b) && /max-file:/.test(b)]).toEqual([name, true]);
    if (/^ {2}(monitor-bot|nginx|pg-\d)/.test(b)) expect([name, /\n    init: true/.test(b)]).toEqual([name, true]);
  }
  for (const v of IMAGE_VARIABLES[file]!) expect(raw).toContain(`\${${v}:-`);
});

test(".env.example documents every variable the Compose files read", () => {
  const example = readFileSync(join(REPO_ROOT, ".env.example"), "utf8");
  const names = new Set<string>();
  for (const f of COMPOSE_FILES) for (const m of readFileSync(join(REPO_ROOT, f), "utf8").matchAll(/\$\{([A-Z_][A-Z0-9_]*)/g)) names.add(m[1]!);
  const undocumented = [...names].filter((n) => !new RegExp(`^#? ?${n}=`, "m").test(example) && !example.includes(n));
  expect(undocumented).toEqual([]);
});
