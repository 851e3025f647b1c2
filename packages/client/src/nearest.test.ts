import { nearestFirst, rankByRtt } from "./nearest.ts";
import { ScriptedServer } from "./scripted-server.ts";

describe("nearestFirst", () => {
  test("lowest round trip first", () => {
    expect(nearestFirst([{ address: "a:1", rttMs: 30 }, { address: "b:1", rttMs: 5.5 }, { address: "c:1", rttMs: 12 }]).map((p) => p.address)).toEqual(["b:1", "c:1", "a:1"]);
  });

  test("within the same millisecond the server's order stands", () => {
    expect(nearestFirst([{ address: "a:1", rttMs: 0.9 }, { address: "b:1", rttMs: 0.1 }, { address: "c:1", rttMs: 0.5 }]).map((p) => p.address)).toEqual(["a:1", "b:1", "c:1"]);
    expect(nearestFirst([{ address: "a:1", rttMs: 7.8 }, { address: "b:1", rttMs: 7.2 }]).map((p) => p.address)).toEqual(["a:1", "b:1"]);
  });

  test("a server that did not answer is left out", () => {
    expect(nearestFirst([{ address: "a:1", rttMs: undefined }, { address: "b:1", rttMs: 3 }]).map((p) => p.address)).toEqual(["b:1"]);
    expect(nearestFirst([])).toEqual([]);
  });
});

describe("rankByRtt", () => {
  const servers: ScriptedServer[] = [];
  afterEach(async () => {
    await Promise.all(servers.splice(0).map((s) => s.close()));
  });

  test("a slow server goes after a fast one, a silent one is left out", async () => {
    const slow = await new ScriptedServer((req, s) => {
      if (req.text === "/@live?") setTimeout(() => s.push("yes", req.from), 120);
      return undefined;
    }).listen();
    const fast = await new ScriptedServer((req) => (req.text === "/@live?" ? ["yes"] : undefined)).listen();
    const silent = await new ScriptedServer(() => undefined).listen();
    servers.push(slow, fast, silent);
    const { ranked, probed } = await rankByRtt([slow.address, silent.address, fast.address], 600, 200);
    expect(ranked.map((p) => p.address)).toEqual([fast.address, slow.address]);
    expect(probed.find((p) => p.address === silent.address)?.rttMs).toBeUndefined();
    expect(ranked[1]!.rttMs).toBeGreaterThanOrEqual(100);
  });
});
