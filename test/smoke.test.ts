import { RawClient } from "./support/udp.ts";
import { useCluster } from "./support/fixture.ts";

const fx = useCluster("smoke", { gateways: 1, routers: 1 });

test("two netcat users chat through one gateway", async () => {
  const a = await RawClient.open(fx.address);
  const b = await RawClient.open(fx.address);
  try {
    expect(await a.request("REGISTER alice secret1")).toBe("OK REGISTERED alice");
    expect(await b.request("REGISTER bob secret2")).toBe("OK REGISTERED bob");
    expect(await a.request("LOGIN alice secret1")).toMatch(/^OK LOGIN alice \S+ \S+$/);
    expect(await b.request("LOGIN bob secret2")).toMatch(/^OK LOGIN bob \S+ \S+$/);
    const sent = await a.request("SEND bob hello bob");
    const id = /^OK SENT (\S+) DELIVERED$/.exec(sent)?.[1];
    expect(id).toBeDefined();
    expect(await b.waitFor(/^MSG /)).toMatch(new RegExp(`^MSG ${id} alice \\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\d\\.\\d{3}Z hello bob$`));
  } finally {
    a.close();
    b.close();
  }
});

test("every datagram from the gateway ends with one newline, so netcat shows one line each", async () => {
  const { createSocket } = await import("node:dgram");
  const s = createSocket("udp4");
  const got: string[] = [];
  s.on("message", (m) => got.push(m.toString("utf8")));
  await new Promise<void>((r) => s.bind(0, "127.0.0.1", () => r()));
  const [host, port] = [fx.address.slice(0, fx.address.lastIndexOf(":")), Number(fx.address.slice(fx.address.lastIndexOf(":") + 1))];
  try {
    // One at a time, as someone typing into netcat sends them.
    for (const [line, replies] of [["REGISTER nl_carol secret1\n", 1], ["LOGIN nl_carol secret1\n", 3], ["/@live?\n", 4], ["BOGUS\n", 5]] as const) {
      s.send(line, port, host);
      for (let t = 0; t < 100 && got.length < replies; t++) await new Promise((r) => setTimeout(r, 50));
    }
    expect(got).toContain("OK REGISTERED nl_carol\n");
    expect(got.some((l) => /^OK LOGIN nl_carol \S+ \S+\n$/.test(l))).toBe(true);
    expect(got).toContain("yes\n");
    expect(got.some((l) => /^ERR UNKNOWN_COMMAND [^\n]*\n$/.test(l))).toBe(true);
    for (const l of got) expect(l.endsWith("\n") && !l.endsWith("\n\n")).toBe(true);
  } finally {
    s.close();
  }
});
