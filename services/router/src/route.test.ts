import { decideRoute } from "./route.ts";
import type { Session } from "./store.ts";

const session = (cluster: string, gateway = "gw1"): Session => ({ user: "carol", token: "t", cluster, gateway, addr: "127.0.0.1:5000", capAck: false, lastHeard: new Date(), proofKeyId: "", proven: false, plainOk: true });

test("a session held here is pushed here, linked or not", () => {
  const s = session("a");
  expect(decideRoute("a", s, false, false)).toEqual({ kind: "local", session: s });
  expect(decideRoute("a", s, true, false)).toEqual({ kind: "local", session: s });
});

test("a session held by another cluster that is UP is routed there (DELIVERED)", () => {
  expect(decideRoute("a", session("c", ""), true, true)).toEqual({ kind: "remote", cluster: "c", linked: true });
});

test("held by a cluster that is DOWN, or not linked, or offline: stored (and replicated when linked)", () => {
  expect(decideRoute("a", session("c", ""), true, false)).toEqual({ kind: "stored", linked: true });
  expect(decideRoute("a", session("c", ""), false, true)).toEqual({ kind: "stored", linked: false });
  expect(decideRoute("a", undefined, true, false)).toEqual({ kind: "stored", linked: true });
  expect(decideRoute("a", undefined, false, false)).toEqual({ kind: "stored", linked: false });
});
