#!/usr/bin/env node
/**
 * The preflight of `./pesan test`: makes sure the machine has what every test needs
 * (needs.ts), before any test runs. As root it installs the missing Debian packages (one line
 * first saying what and why) and starts dockerd when no engine answers; otherwise it stops with
 * one message listing what is missing and the command that installs it (exit code 1).
 * `--untested` prints what the run's `--without` left untested (./pesan test calls it at the end).
 *
 * PESAN_TEST_NO_INSTALL=1 makes a root run behave like a user's (report, never install or start):
 * for machines whose packages someone else manages, and for this script's own test.
 */
import { spawn, spawnSync } from "node:child_process";
import { closeSync, mkdirSync, openSync } from "node:fs";
import { parseCommandLine } from "@pesan/shared/cli";
import { engineMissing, findMissing, installLine, missingMessage, NEEDS, OPTIONAL_NAMES, packagesFor, parseWithout, systemProbe, untestedSummary, type Missing } from "./needs.ts";

const USAGE = `usage: node tools/preflight/src/preflight.ts [--without LIST] [--untested]

The preflight of ./pesan test: installs what the tests need (as root, with apt-get), starts
dockerd when no Docker engine answers, or stops listing what is missing (exit code 1).

  --without LIST  leave these out (comma separated: ${OPTIONAL_NAMES.join(", ")}); adds to
                  $PESAN_TEST_WITHOUT
  --untested      only print what the --without list leaves untested
  --help, --version

PESAN_TEST_NO_INSTALL=1: never install or start anything, only report (also as root).
`;

const DOCKERD_LOG = "/var/log/pesan-dockerd.log";
const DOCKERD_WAIT_MS = 60_000;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function startDockerd(): Promise<boolean> {
  mkdirSync("/var/log", { recursive: true });
  const log = openSync(DOCKERD_LOG, "a");
  // Detached: the engine outlives this script (the tests, then the next run, use it).
  const p = spawn("dockerd", [], { detached: true, stdio: ["ignore", log, log] });
  p.on("error", () => undefined);
  p.unref();
  closeSync(log);
  const probe = systemProbe();
  // Against the clock, not a count of sleeps: one `docker info` may itself take seconds.
  for (const deadline = Date.now() + DOCKERD_WAIT_MS; Date.now() < deadline; await sleep(1000)) if (probe.dockerAnswers()) return true;
  return probe.dockerAnswers();
}

async function main(): Promise<number> {
  const cl = parseCommandLine(process.argv.slice(2), { usage: USAGE, options: { without: { type: "string", multiple: true }, untested: { type: "boolean" } } });
  if (!cl) return 0;
  const args = cl.values;
  let without: string[];
  try {
    without = parseWithout([process.env.PESAN_TEST_WITHOUT ?? "", ...((args.without as string[] | undefined) ?? [])].join(","));
  } catch (e) {
    process.stderr.write(`pesan test: ${(e as Error).message}\n`);
    return 2;
  }
  if (args.untested) {
    process.stdout.write(untestedSummary(without));
    return 0;
  }

  const needs = NEEDS.filter((n) => !without.includes(n.name));
  const root = process.getuid?.() === 0 && process.env.PESAN_TEST_NO_INSTALL !== "1";
  let missing: Missing[] = findMissing(needs, systemProbe());

  const packages = packagesFor(missing);
  if (root && packages.length > 0 && systemProbe().hasCommand("apt-get")) {
    process.stderr.write(installLine(missing));
    const env = { ...process.env, DEBIAN_FRONTEND: "noninteractive" };
    const opts = { stdio: ["ignore", "ignore", "inherit"] as ("ignore" | "inherit")[], env };
    const update = spawnSync("apt-get", ["update", "-qq"], opts);
    const install = update.status === 0 ? spawnSync("apt-get", ["install", "-y", "-qq", ...packages], opts) : update;
    if (install.status !== 0) process.stderr.write(`pesan test: apt-get failed (exit code ${install.status ?? install.signal})\n`);
    missing = findMissing(needs, systemProbe());
  }
  if (root && engineMissing(missing) && systemProbe().hasCommand("dockerd")) {
    process.stderr.write(`pesan test: starting dockerd (the Compose end-to-end tests need a Docker engine; its log: ${DOCKERD_LOG})\n`);
    if (!(await startDockerd())) process.stderr.write(`pesan test: dockerd did not answer within ${DOCKERD_WAIT_MS / 1000} s; see ${DOCKERD_LOG}\n`);
    missing = findMissing(needs, systemProbe());
  }
  if (missing.length > 0) {
    process.stderr.write(missingMessage(missing, { root: process.getuid?.() === 0 }));
    return 1;
  }
  return 0;
}

process.exitCode = await main();
