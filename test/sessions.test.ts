/**
 * Sessions end to end (1 gateway, 1 router): lease expiry (SESSION_LEASE_MS=1500), one session
 * per user (`BYE replaced`), and the per-server quota with `ERR FULL` naming the other servers
 * that are up.
 */
import type { RawClient } from "./support/udp.ts";
import { heartbeat, linesMatching, sleep, sql } from "./support/e2e.ts";
import { useCluster } from "./support/fixture.ts";

const PEER_ADDRESS = "127.0.0.1:5977";
const fx = useCluster("sessions", { gateways: 1, routers: 1, env: { SESSION_LEASE_MS: "1500", QUOTA: "2", SERVERS: `peerx=${PEER_ADDRESS}` } });
const { client } = fx;
const login = async (name: string, register = true): Promise<RawClient> => (await fx.login(name, "secret1", { register })).c;

async function whoList(c: RawClient): Promise<string[]> {
  const lines = await c.requestAll("WHO");
  expect(lines[lines.length - 1]).toMatch(/^OK WHO \d+$/);
  return lines.slice(0, -1).flatMap((l) => l.split(" ").slice(1));
}

/** Every test starts with nobody online (the quota is 2). */
afterEach(async () => {
  const deadline = Date.now() + 5000;
  while (Date.now() < deadline) {
    const rows = await sql<{ n: number }>(fx.db.url, "SELECT count(*)::int AS n FROM sessions");
    if (rows[0]?.n === 0) return;
    await sleep(200);
  }
});

test("a silent client gets BYE expired and vanishes from WHO; a heartbeating client stays online past 3 s", async () => {
  const silent = await login("exp_silent");
  const live = await login("exp_live");
  const hb = heartbeat(live, 300);
  try {
    const t0 = Date.now();
    expect(await silent.waitFor(/^BYE /, 5000)).toBe("BYE expired");
    // lease 1500 ms: not before it, and not much after it
    expect(Date.now() - t0).toBeGreaterThanOrEqual(1000);
    expect(await whoList(live)).not.toContain("exp_silent");
    expect(await silent.request("WHO")).toMatch(/^ERR NOT_LOGGED_IN/);
    const remaining = 3500 - (Date.now() - t0);
    if (remaining > 0) await sleep(remaining);
    expect(linesMatching(live, /^BYE/)).toEqual([]);
    expect(await whoList(live)).toContain("exp_live");
    expect(linesMatching(live, /^yes$/).length).toBeGreaterThanOrEqual(8);
  } finally {
    hb.stop();
  }
  expect(await live.request("LOGOUT")).toBe("OK BYE");
  // the expired user can log in again
  const again = await client();
  expect(await again.request("LOGIN exp_silent secret1")).toMatch(/^OK LOGIN exp_silent \S+ \S+$/);
  expect(await again.request("LOGOUT")).toBe("OK BYE");
});

test("any request renews the lease, not only the heartbeat", async () => {
  const c = await login("renew_any");
  const t0 = Date.now();
  while (Date.now() - t0 < 3000) {
    expect(await c.request("INBOX")).toBe("OK INBOX 0");
    await sleep(300);
  }
  expect(linesMatching(c, /^BYE/)).toEqual([]);
  expect(await c.request("LOGOUT")).toBe("OK BYE");
});

// Issue 10: a datagram the gateway rejects (UNKNOWN_COMMAND, BAD_REQUEST, ...) no longer renews
// the lease: anyone can forge one from the session's address. Requests that act in it do.
test("a malformed datagram does not renew the lease; the session expires", async () => {
  const c = await login("renew_bad");
  const t0 = Date.now();
  while (Date.now() - t0 < 3000) {
    c.send("HELLO there");
    await sleep(300);
  }
  expect(linesMatching(c, /^ERR UNKNOWN_COMMAND HELLO$/).length).toBeGreaterThanOrEqual(8);
  await c.waitFor(/^BYE expired$/, 5000);
});

test("LOGIN from a second address: the first gets BYE replaced and loses the session", async () => {
  const first = await login("rep_a");
  const second = await client();
  const from = first.lines.length;
  expect(await second.request("LOGIN rep_a secret1")).toMatch(/^OK LOGIN rep_a \S+ \S+$/);
  expect(await first.waitFor(/^BYE /, 3000, from)).toBe("BYE replaced");
  expect(await first.request("WHO")).toMatch(/^ERR NOT_LOGGED_IN/);
  const who = await whoList(second);
  expect(who.filter((u) => u === "rep_a")).toHaveLength(1);
  // messages now go to the second address only
  const other = await login("rep_b");
  const fromFirst = first.lines.length;
  expect(await other.request("SEND rep_a where are you")).toMatch(/ DELIVERED$/);
  await second.waitFor(/^MSG \S+ rep_b \S+ where are you$/);
  await sleep(200);
  expect(linesMatching(first, /^MSG /, fromFirst)).toEqual([]);
  // the same address logging in again is not "replaced"
  const fromSecond = second.lines.length;
  expect(await second.request("LOGIN rep_a secret1")).toMatch(/^OK LOGIN/);
  await sleep(200);
  expect(linesMatching(second, /^BYE/, fromSecond)).toEqual([]);
  for (const c of [second, other]) expect(await c.request("LOGOUT")).toBe("OK BYE");
});

test("QUOTA=2: the third LOGIN gets ERR FULL; the addresses listed are the other servers that are UP", async () => {
  const a = await login("q_a");
  const b = await login("q_b");
  const hbs = [heartbeat(a), heartbeat(b)];
  try {
    const c = await client();
    expect(await c.request("REGISTER q_c secret1")).toBe("OK REGISTERED q_c");
    // the only peer is DOWN: no address, and the text says so
    const full = await c.request("LOGIN q_c secret1");
    expect(full).toBe("ERR FULL this server is full, try again later (no other server is up)");
    expect(full).not.toContain(PEER_ADDRESS);
    expect(full).not.toMatch(/\d+\.\d+\.\d+\.\d+:\d+/);
    expect(await c.request("WHO")).toMatch(/^ERR NOT_LOGGED_IN/);
    // SERVERS shows this server full and the peer down
    const servers = await c.requestAll("SERVERS");
    expect(servers[0]).toMatch(/^SERVER local \S+ UP 2\/2$/);
    expect(servers[1]).toMatch(new RegExp(`^SERVER peerx ${PEER_ADDRESS.replace(/\./g, "\\.")} DOWN `));

    await sql(fx.db.url, "UPDATE server_list SET active = true WHERE name = $1", ["peerx"]);
    const full2 = await c.request("LOGIN q_c secret1");
    expect(full2).toBe(`ERR FULL ${PEER_ADDRESS}`);
    expect(full2.split(" ")).toContain(PEER_ADDRESS);
    expect(full2).not.toContain(fx.address);

    // a user already online may log in again (another address) although the server is full
    const a2 = await client();
    expect(await a2.request("LOGIN q_a secret1")).toMatch(/^OK LOGIN q_a \S+ \S+$/);
    await a.waitFor(/^BYE replaced$/);
    hbs.push(heartbeat(a2));

    // one leaves: the third user gets in
    expect(await b.request("LOGOUT")).toBe("OK BYE");
    expect(await c.request("LOGIN q_c secret1")).toMatch(/^OK LOGIN q_c \S+ \S+$/);
    for (const x of [a2, c]) expect(await x.request("LOGOUT")).toBe("OK BYE");
  } finally {
    for (const h of hbs) h.stop();
    await sql(fx.db.url, "UPDATE server_list SET active = false WHERE name = $1", ["peerx"]);
  }
});
