/**
 * LocalHost: commands run here like over SSH (exit code, output, the timeout kills the whole
 * process group), and the built-in reads give the parsers what the SSH commands' output gives
 * them, from a proc directory of the test's own (so the numbers are known) and from the real
 * /proc.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statfsSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { LocalHost } from "./local.ts";
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
