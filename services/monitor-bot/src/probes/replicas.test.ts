import { Replicas } from "./replicas.ts";

const a = (address: string) => ({ address, family: 4 });

describe("Replicas", () => {
  test("every resolved address is checked; a new one joins at once", () => {
    const r = new Replicas(1000);
    expect(r.round([a("10.0.0.1"), a("10.0.0.2")], 0)).toEqual({ check: [{ ...a("10.0.0.1"), current: true }, { ...a("10.0.0.2"), current: true }], forgotten: [] });
    expect(r.round([a("10.0.0.1"), a("10.0.0.2"), a("10.0.0.3")], 100).check.map((c) => c.address)).toEqual(["10.0.0.1", "10.0.0.2", "10.0.0.3"]);
  });

  test("an address that stops resolving is still checked for forgetAfter, then forgotten once", () => {
    const r = new Replicas(1000);
    r.round([a("10.0.0.1"), a("10.0.0.2")], 0);
    expect(r.round([a("10.0.0.1")], 500)).toEqual({ check: [{ ...a("10.0.0.1"), current: true }, { ...a("10.0.0.2"), current: false }], forgotten: [] });
    expect(r.round([a("10.0.0.1")], 999).forgotten).toEqual([]);
    expect(r.round([a("10.0.0.1")], 1000)).toEqual({ check: [{ ...a("10.0.0.1"), current: true }], forgotten: ["10.0.0.2"] });
    expect(r.round([a("10.0.0.1")], 5000).forgotten).toEqual([]);
  });

  test("an address that resolves again before it is forgotten starts its time afresh", () => {
    const r = new Replicas(1000);
    r.round([a("10.0.0.1")], 0);
    r.round([], 900);
    r.round([a("10.0.0.1")], 950);
    expect(r.round([], 1900)).toEqual({ check: [{ ...a("10.0.0.1"), current: false }], forgotten: [] });
  });

  test("seeded addresses (down before a restart) are checked though nothing resolves to them, then forgotten", () => {
    const r = new Replicas(1000);
    r.seed([a("10.0.0.9")], 0);
    expect(r.round([], 10)).toEqual({ check: [{ ...a("10.0.0.9"), current: false }], forgotten: [] });
    expect(r.round([], 1000)).toEqual({ check: [], forgotten: ["10.0.0.9"] });
  });

  test("forgetAfter 0: an unresolved address goes at the next round", () => {
    const r = new Replicas(0);
    r.round([a("10.0.0.1"), a("10.0.0.2")], 0);
    expect(r.round([a("10.0.0.1")], 0).forgotten).toEqual(["10.0.0.2"]);
  });
});
