/**
 * The connection history (connection_log): every way a session begins and ends leaves one row,
 * in order, naming the event, the gateway and the client's address, as an operator reading it
 * after an incident expects: login, replaced (another login of the user), resume, logout,
 * expired (lease, SESSION_LEASE_MS=1500 here) and unregistered.
 */
import { sleep, sql } from "./support/e2e.ts";
import { useCluster } from "./support/fixture.ts";

const fx = useCluster("connlog", { gateways: 1, routers: 1, env: { SESSION_LEASE_MS: "1500" } });

interface Row {
  event: string;
  gateway: string | null;
  addr: string | null;
}

const history = (user: string): Promise<Row[]> => sql<Row>(fx.db.url, "SELECT event, gateway, addr FROM connection_log WHERE user_name = $1 ORDER BY id", [user]);

test("login, replaced, resume, logout, expired and unregistered are each recorded once, in order, with the client's address", async () => {
  const gateway = fx.cluster.gateways[0]!.id;
  const at = (port: number) => `127.0.0.1:${port}`;
  const first = await fx.login("hist_ann", "secret1", { register: true });
  const second = await fx.login("hist_ann", "secret1");
  expect(await first.c.waitFor(/^BYE /, 5000)).toBe("BYE replaced");
  // A RESUME from a third address, with the token the second login got.
  const third = await fx.client();
  expect(await third.request(`RESUME hist_ann ${second.token}`)).toMatch(/^OK LOGIN hist_ann /);
  expect(await third.request("LOGOUT")).toMatch(/^OK BYE/);
  // A login left silent: its lease runs out.
  const silent = await fx.login("hist_ann", "secret1");
  expect(await silent.c.waitFor(/^BYE /, 5000)).toBe("BYE expired");
  const last = await fx.login("hist_ann", "secret1");
  expect(await last.c.request("UNREGISTER secret1")).toMatch(/^OK UNREGISTERED/);

  let rows: Row[] = [];
  const deadline = Date.now() + 5000;
  while (Date.now() < deadline && (rows = await history("hist_ann")).length < 9) await sleep(100);
  expect(rows).toEqual([
    { event: "login", gateway, addr: at(first.c.localPort) },
    { event: "replaced", gateway, addr: at(first.c.localPort) },
    { event: "login", gateway, addr: at(second.c.localPort) },
    { event: "resume", gateway, addr: at(third.localPort) },
    { event: "logout", gateway, addr: at(third.localPort) },
    { event: "login", gateway, addr: at(silent.c.localPort) },
    { event: "expired", gateway, addr: at(silent.c.localPort) },
    { event: "login", gateway, addr: at(last.c.localPort) },
    { event: "unregistered", gateway, addr: at(last.c.localPort) },
  ]);
});
