/**
 * LocalHost: commands run here like over SSH (exit code, output, the timeout kills the whole
 * process group), and the built-in reads give the parsers what the SSH commands' output gives
 * them, from a proc directory of the test's own (so the numbers are known) and from the real
 * /proc.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statfsSync, writeFileSync } from "node:fs";
import { execFileSync } from "node:child_process";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { collectFacts } from "./facts.ts";
import { LocalHost, localFactSource } from "./local.ts";
import { parseCpu, parseLoadavg, parseMem } from "./parsers.ts";

const dir = mkdtempSync(join(tmpdir(), "pesan-local-host-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

test("exec: exit code, stdout and stderr, as over SSH", async () => {
  const host = new LocalHost(["/"]);
  expect(await host.exec("echo out; echo err >&2; exit 3", 2000)).toEqual({ code: 3, stdout: "out\n", stderr: "err\n" });
  await host.close();
});

test("exec: at the timeout the command and its children are killed", async () => {
  const host = new LocalHost(["/"]);
  const pidFile = join(dir, "child.pid");
  const started = Date.now();
  await expect(host.exec(`sleep 30 & echo $! > ${pidFile}; wait`, 300)).rejects.toThrow(/did not finish within 300 ms/);
  expect(Date.now() - started).toBeLessThan(2000);
  const child = Number(readFileSync(pidFile, "utf8"));
  // The background sleep was in the same process group: dead too (gone, or a zombie where
  // the sandbox's init does not reap orphans).
  await new Promise((r) => setTimeout(r, 100));
  let state = "gone";
  try {
    state = readFileSync(`/proc/${child}/stat`, "utf8").replace(/^.*\) /s, "")[0]!;
  } catch {
    // gone
  }
  expect(["gone", "Z"]).toContain(state);
  await host.close();
});

test("reads: /proc text for the same parsers, the share since the previous read, statfs for the disk", async () => {
  const proc = join(dir, "proc");
  mkdirSync(proc);
  writeFileSync(join(proc, "meminfo"), "MemTotal:       1000 kB\nMemFree: 100 kB\nMemAvailable:    250 kB\n");
  writeFileSync(join(proc, "stat"), "cpu  100 0 100 800 0 0 0 0 0 0\ncpu0 1 1 1 1\n");
  const host = new LocalHost([dir], proc);
  const mem = await host.read("mem", 1000);
  expect("text" in mem && parseMem(mem.text)).toBe(75);
  // The first CPU read waits (here half the timeout) for a second one: no time passed in this file.
  const first = await host.read("cpu", 100);
  expect("text" in first && (() => parseCpu(first.text))).toThrow(/no CPU time passed/);
  writeFileSync(join(proc, "stat"), "cpu  150 0 150 850 50 0 0 0 0 0\n");
  writeFileSync(join(proc, "loadavg"), "0.94 0.80 0.36 3/189 22142\n");
  const second = await host.read("cpu", 1000);
  expect("text" in second && parseCpu(second.text)).toBe(50);
  expect("text" in second && parseLoadavg(second.text)).toEqual([0.94, 0.8, 0.36]);
  const fs = statfsSync(dir);
  expect(await host.read("hdd", 1000)).toEqual({ percent: expect.any(Number), totalBytes: fs.blocks * fs.bsize });
  await host.close();
});

test("a missing file or path is the probe's error, saying which", async () => {
  const host = new LocalHost([join(dir, "nope")], join(dir, "no-proc"));
  await expect(host.read("mem", 1000)).rejects.toThrow(/cannot read .*no-proc\/meminfo/);
  await expect(host.read("hdd", 1000)).rejects.toThrow(/statfs .*nope/);
  await host.close();
});

test("the real /proc: numbers the parsers accept", async () => {
  const host = new LocalHost(["/"]);
  const cpu = await host.read("cpu", 400);
  expect("text" in cpu && parseCpu(cpu.text)).toBeGreaterThanOrEqual(0);
  expect("text" in cpu && parseLoadavg(cpu.text)).toEqual([expect.any(Number), expect.any(Number), expect.any(Number)]);
  const mem = await host.read("mem", 1000);
  expect("text" in mem && parseMem(mem.text)).toBeGreaterThan(0);
  await host.close();
});

describe("facts of a local target (localFactSource)", () => {
  const at = new Date("2026-12-03T09:00:00Z");
  const now = () => at;

  test("read from the proc files and os-release the default commands print, through the same parsers", async () => {
    const proc = join(dir, "facts-proc");
    mkdirSync(proc);
    writeFileSync(join(proc, "cpuinfo"), "processor\t: 0\nmodel name\t: Test CPU 9000\n\nprocessor\t: 1\nmodel name\t: Test CPU 9000\n");
    writeFileSync(join(proc, "loadavg"), "1.50 0.75 0.25 2/100 9\n");
    writeFileSync(join(proc, "uptime"), "3725.12 100.00\n");
    const osRelease = join(dir, "os-release");
    writeFileSync(osRelease, 'NAME="Test OS"\nPRETTY_NAME="Test OS 1 (tiny)"\n');
    const host = new LocalHost(["/"], proc, [join(dir, "no-such-os-release"), osRelease]);
    const f = await collectFacts(localFactSource(host, {}, 1000), now);
    expect(f).toEqual({
      cpuModel: "Test CPU 9000",
      cores: 2,
      load: [1.5, 0.75, 0.25],
      os: "Test OS 1 (tiny)",
      kernel: execFileSync("uname", ["-sr"], { encoding: "utf8" }).trim(),
      uptimeSeconds: 3725,
      at,
      errors: {},
    });
    await host.close();
  });

  test("a configured command runs here instead; a failing one or a missing file fails only its own fact", async () => {
    const host = new LocalHost(["/"], join(dir, "no-proc"), [join(dir, "no-os-release")]);
    const f = await collectFacts(localFactSource(host, { kernel: "echo Plan9 4", cpuinfo: "echo broken >&2; exit 2" }, 1000), now);
    expect(f.kernel).toBe("Plan9 4");
    expect(f.cpuModel).toBeUndefined();
    expect(f.errors.cpuinfo).toBe("exit code 2: broken");
    expect(f.errors.loadavg).toMatch(/cannot read .*no-proc\/loadavg/);
    expect(f.errors.osRelease).toMatch(/cannot read .*no-os-release/);
    expect(Object.keys(f.errors).sort()).toEqual(["cpuinfo", "loadavg", "osRelease", "uptime"]);
    await host.close();
  });

  test("the real machine: what /proc/cpuinfo and uname -sr say", async () => {
    const host = new LocalHost(["/"]);
    const f = await collectFacts(localFactSource(host, {}, 2000), now);
    const model = /^model name\s*:\s*(.*)$/m.exec(readFileSync("/proc/cpuinfo", "utf8"))?.[1]?.replace(/\s+/g, " ").trim();
    if (model !== undefined) expect(f.cpuModel).toBe(model);
    expect(f.cores).toBe((readFileSync("/proc/cpuinfo", "utf8").match(/^processor\s*:\s*\d+$/gm) ?? []).length);
    expect(f.kernel).toBe(execFileSync("uname", ["-sr"], { encoding: "utf8" }).trim());
    expect(f.uptimeSeconds).toBeGreaterThan(0);
    expect(f.errors).toEqual({});
    await host.close();
  });
});
