import { commandFactSource, DEFAULT_FACT_COMMANDS, factsFrom, parseCpuInfo, parseKernel, parseLoadAvg, parseOsRelease, parseUptime } from "./facts.ts";

const X86 = `processor\t: 0
vendor_id\t: GenuineIntel
model name\t: Intel(R) Xeon(R) CPU E5-2680 v4 @ 2.40GHz
cpu cores\t: 2

processor\t: 1
vendor_id\t: GenuineIntel
model name\t: Intel(R) Xeon(R) CPU E5-2680 v4 @ 2.40GHz
cpu cores\t: 2
`;

const ARM = `processor\t: 0
BogoMIPS\t: 108.00
CPU implementer\t: 0x41

processor\t: 1
BogoMIPS\t: 108.00

processor\t: 2

processor\t: 3

Hardware\t: BCM2835
Model\t\t: Raspberry Pi 4 Model B Rev 1.4
`;

describe("parseCpuInfo", () => {
  test("x86: the model name and one core per processor entry", () => {
    expect(parseCpuInfo(X86)).toEqual({ model: "Intel(R) Xeon(R) CPU E5-2680 v4 @ 2.40GHz", cores: 2 });
  });
  test("ARM without a model name: Hardware", () => {
    expect(parseCpuInfo(ARM)).toEqual({ model: "BCM2835", cores: 4 });
  });
  test("a bare number (nproc) is the core count", () => {
    expect(parseCpuInfo("8\n")).toEqual({ model: undefined, cores: 8 });
  });
  test("garbage gives nothing, never throws", () => {
    expect(parseCpuInfo("")).toEqual({ model: undefined, cores: undefined });
    expect(parseCpuInfo("\u0000\u0001 : : :")).toEqual({ model: undefined, cores: undefined });
  });
});

test("parseLoadAvg", () => {
  expect(parseLoadAvg("0.52 0.58 0.59 1/467 12345\n")).toEqual([0.52, 0.58, 0.59]);
  expect(parseLoadAvg("12 3.5 0")).toEqual([12, 3.5, 0]);
  expect(parseLoadAvg("load: high")).toBeUndefined();
  expect(parseLoadAvg("0.5 0.4")).toBeUndefined();
});

describe("parseOsRelease", () => {
  test("PRETTY_NAME, quotes removed", () => {
    expect(parseOsRelease('NAME="Debian GNU/Linux"\nPRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nVERSION_ID="12"\n')).toBe("Debian GNU/Linux 12 (bookworm)");
    expect(parseOsRelease("PRETTY_NAME='Alpine Linux v3.19'")).toBe("Alpine Linux v3.19");
    expect(parseOsRelease('PRETTY_NAME="Say \\"hi\\""')).toBe('Say "hi"');
  });
  test("without PRETTY_NAME: NAME and VERSION", () => {
    expect(parseOsRelease("NAME=Fedora\nVERSION=\"39 (Server Edition)\"")).toBe("Fedora 39 (Server Edition)");
  });
  test("nothing usable", () => {
    expect(parseOsRelease("cat: /etc/os-release: No such file")).toBeUndefined();
    expect(parseOsRelease("")).toBeUndefined();
  });
});

test("parseKernel and parseUptime", () => {
  expect(parseKernel("\nLinux 6.1.0-18-amd64\n")).toBe("Linux 6.1.0-18-amd64");
  expect(parseKernel("  \n")).toBeUndefined();
  expect(parseUptime("350735.47 234388.90\n")).toBe(350735);
  expect(parseUptime("up 3 days")).toBeUndefined();
});

describe("factsFrom", () => {
  const at = new Date("2026-12-03T09:00:00Z");
  test("every text read", () => {
    expect(
      factsFrom(
        {
          cpuinfo: { text: X86 },
          loadavg: { text: "1.00 0.50 0.25 2/100 9\n" },
          osRelease: { text: 'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\n' },
          kernel: { text: "Linux 6.1.0-18-amd64\n" },
          uptime: { text: "90061.5 1.0\n" },
        },
        at,
      ),
    ).toEqual({
      cpuModel: "Intel(R) Xeon(R) CPU E5-2680 v4 @ 2.40GHz",
      cores: 2,
      load: [1, 0.5, 0.25],
      os: "Debian GNU/Linux 12 (bookworm)",
      kernel: "Linux 6.1.0-18-amd64",
      uptimeSeconds: 90061,
      at,
      errors: {},
    });
  });
  test("a failed or odd text leaves only its own facts out, and says why", () => {
    const f = factsFrom({ cpuinfo: { error: "exit code 1: no such file" }, loadavg: { text: "n/a" }, kernel: { text: "Linux 6.1" } }, at);
    expect(f).toMatchObject({ cpuModel: undefined, cores: undefined, load: undefined, os: undefined, kernel: "Linux 6.1", uptimeSeconds: undefined });
    expect(f.errors).toEqual({ cpuinfo: "exit code 1: no such file", loadavg: 'unreadable output: "n/a"' });
  });
});

describe("commandFactSource", () => {
  class ConnectError extends Error {}
  test("runs each configured command; a failing one fails only its fact", async () => {
    const ran: string[] = [];
    const source = commandFactSource(
      { ...DEFAULT_FACT_COMMANDS, kernel: "my-uname" },
      async (c) => {
        ran.push(c);
        if (c === "cat /proc/uptime") return { code: 1, stdout: "", stderr: "denied" };
        if (c === "cat /etc/os-release") throw new Error("timed out");
        return { code: 0, stdout: c, stderr: "" };
      },
      (e) => e instanceof ConnectError,
    );
    expect(await source(["kernel", "uptime", "osRelease"])).toEqual({ kernel: { text: "my-uname" }, uptime: { error: "exit code 1: denied" }, osRelease: { error: "timed out" } });
    expect(ran).toEqual(["my-uname", "cat /proc/uptime", "cat /etc/os-release"]);
  });
  test("a connection failure is thrown, for the host to be reported unreachable", async () => {
    const source = commandFactSource(DEFAULT_FACT_COMMANDS, () => Promise.reject(new ConnectError("refused")), (e) => e instanceof ConnectError);
    await expect(source(["kernel"])).rejects.toThrow("refused");
  });
});
