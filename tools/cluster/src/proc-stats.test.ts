import { spawn } from "node:child_process";
import { cpuBetween, cpuMs, isLocalHost, parentOf, parseStat, peakRssMb, redisPidFromInfo, serverCpuMs } from "./proc-stats.ts";

test("this process's CPU time grows with work and its peak RSS is plausible", () => {
  const before = cpuMs(process.pid)!;
  // 200 ms of CPU by the process's own count (a loaded machine gives a wall-clock loop less).
  const start = process.cpuUsage();
  let x = 0;
  while (process.cpuUsage(start).user + process.cpuUsage(start).system < 200_000) x += Math.sqrt(x + 1);
  const after = cpuMs(process.pid)!;
  expect(x).toBeGreaterThan(0);
  // At least 150 ms of it at /proc's 10 ms tick granularity.
  expect(after - before).toBeGreaterThanOrEqual(150);
  const rss = peakRssMb(process.pid)!;
  expect(rss).toBeGreaterThanOrEqual(Math.floor(process.memoryUsage().rss / 1024 / 1024) - 1);
});

test("a process that is not there reads as undefined and drops out of the difference", () => {
  expect(cpuMs(2 ** 22 + 1)).toBeUndefined();
  expect(peakRssMb(2 ** 22 + 1)).toBeUndefined();
  const d = cpuBetween(new Map([["a", 10], ["b", undefined]]), new Map([["a", 35], ["b", 5], ["c", 1]]));
  expect([...d]).toEqual([["a", 25]]);
});

test("a stat line is read past a command name with spaces and parentheses", () => {
  // pid (comm) state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime stime cutime cstime ...
  const s = parseStat("4242 (postgres: a (b) c) S 17 4242 4242 0 -1 4194560 10 0 0 0 250 50 700 300 20 0 1 0 9 1 1 1\n")!;
  expect(s).toEqual({ name: "postgres: a (b) c", ppid: 17, ownMs: 3000, reapedChildrenMs: 10_000 });
  expect(parseStat("")).toBeUndefined();
  expect(parseStat("12 (x) S 1 2")).toBeUndefined();
});

test("a server's CPU includes its children, living and ended", async () => {
  // A child that burns 300 ms of CPU (its own count, not the clock's: a loaded machine gives it
  // less than its wall time) and exits: once reaped, its time is in this process's total.
  const before = serverCpuMs(process.pid)!;
  await new Promise<void>((resolve, reject) => {
    const burn = "let x = 0; while (process.cpuUsage().user + process.cpuUsage().system < 300000) x += Math.sqrt(x + 1);";
    const c = spawn(process.execPath, ["-e", burn], { stdio: "ignore" });
    c.on("error", reject);
    c.on("exit", () => resolve());
  });
  const after = serverCpuMs(process.pid)!;
  // The child's 300 ms (and this process's own meanwhile), at 10 ms tick granularity.
  expect(after - before).toBeGreaterThanOrEqual(280);
  expect(parentOf(process.pid)?.pid).toBe(process.ppid);
  expect(serverCpuMs(2 ** 22 + 1)).toBeUndefined();
});

test("Redis's pid comes from INFO server, and only loopback hosts count as local", () => {
  expect(redisPidFromInfo("# Server\r\nredis_version:7.0.15\r\nprocess_id:5150\r\nrun_id:abc\r\n")).toBe(5150);
  expect(redisPidFromInfo("# Server\r\nredis_version:7.0.15\r\n")).toBeUndefined();
  for (const h of ["127.0.0.1", "localhost", "[::1]", "127.0.1.1", "/var/run/postgresql"]) expect([h, isLocalHost(h)]).toEqual([h, true]);
  for (const h of ["10.0.0.5", "db.example.com", "128.0.0.1"]) expect([h, isLocalHost(h)]).toEqual([h, false]);
});
