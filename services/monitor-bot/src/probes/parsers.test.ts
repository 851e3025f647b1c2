import { diskFromStatfs, diskTotalBytes, memTotalBytes, parseCpu, parseDisk, parseLoadavg, parseMem, statfsPercent } from "./parsers.ts";

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

describe("parseLoadavg", () => {
  test("the /proc/loadavg line after the CPU probe's two reads; the CPU share is unaffected", () => {
    const out = "cpu  100 0 100 800 0 0 0 0 0 0\ncpu  150 0 150 850 50 0 0 0 0 0\n0.94 0.80 12.36 3/189 22142\n";
    expect(parseLoadavg(out)).toEqual([0.94, 0.8, 12.36]);
    expect(parseCpu(out)).toBe(50);
  });
  test("none without the line", () => {
    expect(parseLoadavg("42")).toBeUndefined();
    expect(parseLoadavg("cpu  1 2 3 4\ncpu  2 3 4 5\n")).toBeUndefined();
  });
});

describe("totals", () => {
  test("MemTotal in bytes; none for a bare percentage", () => {
    expect(memTotalBytes("MemTotal:       2048 kB\nMemAvailable:    1024 kB\n")).toBe(2048 * 1024);
    expect(memTotalBytes("42")).toBeUndefined();
  });
  test("df -P: the size of the filesystem whose capacity counts", () => {
    const out = [
      "Filesystem     1024-blocks     Used Available Capacity Mounted on",
      "/dev/vda         264212084 23951436  82439476      23% /",
      "/dev/vdb              1000      900       100      90% /mnt/my data",
    ].join("\n");
    expect(diskTotalBytes(out)).toBe(1000 * 1024);
    expect(diskTotalBytes("5%")).toBeUndefined();
  });
});

describe("statfs, as df counts it", () => {
  test("used / (used + available): root's reserved blocks count as full", () => {
    // 1000 blocks, 300 free of which 250 available to users: 700 / 950
    expect(statfsPercent({ bsize: 4096, blocks: 1000, bfree: 300, bavail: 250 })).toBe(73.68);
    expect(statfsPercent({ bsize: 4096, blocks: 1000, bfree: 1000, bavail: 1000 })).toBe(0);
  });
  test("the fullest of several filesystems, with its size", () => {
    expect(diskFromStatfs([{ bsize: 4096, blocks: 1000, bfree: 900, bavail: 900 }, { bsize: 1024, blocks: 500, bfree: 50, bavail: 50 }])).toEqual({ percent: 90, totalBytes: 500 * 1024 });
  });
  test("a filesystem with no blocks is an error, not NaN", () => {
    expect(() => statfsPercent({ bsize: 4096, blocks: 0, bfree: 0, bavail: 0 })).toThrow(/no usable blocks/);
  });
});
