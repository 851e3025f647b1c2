import { parseCpu, parseDisk, parseMem } from "./parsers.ts";

describe("parseCpu", () => {
  test("busy share between two /proc/stat reads", () => {
    const out = "cpu  100 0 100 800 0 0 0 0 0 0\ncpu  150 0 150 850 50 0 0 0 0 0\n";
    // total +200, idle (idle + iowait) +100 -> 50 %
    expect(parseCpu(out)).toBe(50);
  });
  test("takes the first and the last read; per-core lines are ignored", () => {
    const out = ["cpu  0 0 0 100 0 0 0 0", "cpu0 0 0 0 50 0 0 0 0", "cpu  10 0 0 190 0 0 0 0", "cpu  30 0 0 270 0 0 0 0"].join("\n");
    expect(parseCpu(out)).toBe(15);
  });
  test("a plain number is taken as the percentage", () => {
    expect(parseCpu("12.345\n")).toBe(12.35);
    expect(parseCpu(" 7% ")).toBe(7);
  });
  test("errors say what was expected", () => {
    expect(() => parseCpu("cpu  1 2 3 4\n")).toThrow(/two 'cpu ' lines/);
    expect(() => parseCpu("cpu  1 2 3 4\ncpu  1 2 3 4\n")).toThrow(/no CPU time passed/);
    expect(() => parseCpu("150")).toThrow(/not a percentage/);
    expect(() => parseCpu("")).toThrow();
  });
});

describe("parseMem", () => {
  test("MemAvailable share of MemTotal", () => {
    expect(parseMem("MemTotal:       1000 kB\nMemFree: 100 kB\nMemAvailable:    250 kB\n")).toBe(75);
  });
  test("old kernels without MemAvailable: free + buffers + cached", () => {
    expect(parseMem("MemTotal: 1000 kB\nMemFree: 100 kB\nBuffers: 100 kB\nCached: 200 kB\n")).toBe(60);
  });
  test("a plain number, or an error", () => {
    expect(parseMem("33.3")).toBe(33.3);
    expect(() => parseMem("nothing here")).toThrow(/MemTotal/);
  });
});

describe("parseDisk", () => {
  test("df -P capacity column, fullest filesystem", () => {
    const out = [
      "Filesystem     1024-blocks     Used Available Capacity Mounted on",
      "/dev/vda         264212084 23951436  82439476      23% /",
      "/dev/vdb              1000      900       100      90% /mnt/my data",
    ].join("\n");
    expect(parseDisk(out)).toBe(90);
  });
  test("a plain number, or an error", () => {
    expect(parseDisk("5%")).toBe(5);
    expect(() => parseDisk("Filesystem Size\n")).toThrow(/df -P/);
  });
});
