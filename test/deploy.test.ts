/**
 * The deployment files, checked without a Docker engine: the Dockerfile with dockerfile-utils'
 * linter, the Compose file with Debian's docker-compose and with dclint (compose-spec schema
 * and best practices).
 */
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { validate } from "dockerfile-utils";
import { REPO_ROOT } from "@pesan/cluster";

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

test.each(["docker-compose.yml", "docker-compose.two-clusters.yml"])("%s passes dclint", (file) => {
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
    ],
    { encoding: "utf8" },
  );
  expect(r.stdout + r.stderr).not.toMatch(/error|warning/);
  expect(r.status).toBe(0);
});
