import { RawClient } from "./support/udp.ts";
import { useCluster } from "./support/fixture.ts";

const fx = useCluster("smoke", { gateways: 1, routers: 1 });

test("two netcat users chat through one gateway", async () => {
  const a = await RawClient.open(fx.address);
  const b = await RawClient.open(fx.address);
  try {
    expect(await a.request("REGISTER alice secret1")).toBe("OK REGISTERED alice");
    expect(await b.request("REGISTER bob secret2")).toBe("OK REGISTERED bob");
    expect(await a.request("LOGIN alice secret1")).toMatch(/^OK LOGIN alice \S+$/);
    expect(await b.request("LOGIN bob secret2")).toMatch(/^OK LOGIN bob \S+$/);
    const sent = await a.request("SEND bob hello bob");
    const id = /^OK SENT (\S+) DELIVERED$/.exec(sent)?.[1];
    expect(id).toBeDefined();
    expect(await b.waitFor(/^MSG /)).toMatch(new RegExp(`^MSG ${id} alice \\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\d\\.\\d{3}Z hello bob$`));
  } finally {
    a.close();
    b.close();
  }
});
