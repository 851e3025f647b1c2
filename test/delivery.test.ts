/**
 * Message delivery end to end (2 gateways, 1 router): offline messages at the next login in
 * order and exactly once, delivery across gateways, reliable delivery (CAP ACK: resends,
 * re-offer at login, ACK stops resends), and exactly-once SEND under client retry.
 */
import { createRedisClient, encodeInbound, inStreamOf, WITHHELD } from "@pesan/shared/bus";
import type { RawClient } from "./support/udp.ts";
import { ID, ISO_TIME, linesMatching, re, sentId, sleep, sql } from "./support/e2e.ts";
import { useCluster, type LoginOptions } from "./support/fixture.ts";

const fx = useCluster("delivery", { gateways: 2, routers: 1, env: { RESEND_BASE_MS: "100", RESEND_MAX_ATTEMPTS: "5" } });
const { client } = fx;
const gw1 = () => fx.addresses[0]!;
const gw2 = () => fx.addresses[1]!;
const login = (name: string, o: LoginOptions = {}) => fx.login(name, "secret1", o);

async function register(name: string): Promise<void> {
  const c = await client();
  expect(await c.request(`REGISTER ${name} secret1`)).toBe(`OK REGISTERED ${name}`);
}

const msgsWithId = (c: RawClient, id: string, from = 0): string[] => linesMatching(c, new RegExp(`^MSG ${re(id)} `), from);

describe("offline delivery", () => {
  test("messages sent while offline arrive as MSG pushes at the next LOGIN, in order, exactly once", async () => {
    await register("off_b");
    const { c: a } = await login("off_a", { register: true });
    const ids: string[] = [];
    for (let i = 1; i <= 5; i++) {
      const reply = await a.request(`SEND off_b offline message ${i}`);
      expect(reply).toMatch(/^OK SENT \S+ STORED$/);
      ids.push(sentId(reply));
    }
    const b = await client(gw2());
    const from = b.lines.length;
    expect(await b.request("LOGIN off_b secret1")).toMatch(/^OK LOGIN off_b \S+ \S+$/);
    await b.waitFor(new RegExp(`^MSG ${re(ids[4]!)} `), 5000, from);
    await sleep(300);
    const got = linesMatching(b, /^MSG /, from);
    expect(got).toHaveLength(5);
    got.forEach((line, i) => expect(line).toMatch(new RegExp(`^MSG ${re(ids[i]!)} off_a ${ISO_TIME} offline message ${i + 1}$`)));
    // pushes follow the reply: OK LOGIN, then ONLINE, then the messages
    const seq = b.lines.slice(from).map((l) => l.replace(/^@\S+ /, "").split(" ")[0]);
    expect(seq.slice(0, 2)).toEqual(["OK", "ONLINE"]);

    // a second login gets none of them again
    expect(await b.request("LOGOUT")).toBe("OK BYE");
    const from2 = b.lines.length;
    expect(await b.request("LOGIN off_b secret1")).toMatch(/^OK LOGIN off_b \S+ \S+$/);
    await sleep(700);
    expect(linesMatching(b, /^MSG /, from2)).toEqual([]);
    // ... and from another address neither
    const b2 = await client(gw1());
    const from3 = b2.lines.length;
    expect(await b2.request("LOGIN off_b secret1")).toMatch(/^OK LOGIN off_b \S+ \S+$/);
    await sleep(500);
    expect(linesMatching(b2, /^MSG /, from3)).toEqual([]);
    // but they are all in the inbox
    expect((await b2.requestAll("INBOX")).pop()).toBe("OK INBOX 5");
  });

  test("tagged SENDs sent in one burst (one router batch, one sent_at) arrive at login and list in INBOX in the order sent", async () => {
    // A tagged SEND's id is a hash of its session and tag (cross-cluster exactly-once), so only
    // the stored order (messages.seq) keeps a burst in order; by sent_at and id, 8 of them
    // would come out in the right order once in 40,320.
    await register("burst_b");
    const { c: a } = await login("burst_a", { register: true });
    const from = a.lines.length;
    for (let i = 1; i <= 8; i++) a.send(`@b${i} SEND burst_b burst ${i}`);
    for (let i = 1; i <= 8; i++) await a.waitFor(new RegExp(`^@b${i} OK SENT \\S+ STORED$`), 5000, from);
    const ids = Array.from({ length: 8 }, (_, i) => sentId(linesMatching(a, new RegExp(`^@b${i + 1} OK SENT `), from)[0]!.replace(/^@\S+ /, "")));
    const b = await client(gw2());
    const fromB = b.lines.length;
    expect(await b.request("LOGIN burst_b secret1")).toMatch(/^OK LOGIN burst_b \S+ \S+$/);
    await b.waitFor(new RegExp(`^MSG ${re(ids[7]!)} `), 5000, fromB);
    await sleep(300);
    expect(linesMatching(b, /^MSG /, fromB).map((l) => l.split(" ").slice(4).join(" "))).toEqual(ids.map((_, i) => `burst ${i + 1}`));
    const inbox = await b.requestAll("INBOX");
    expect(inbox.pop()).toBe("OK INBOX 8");
    expect(inbox.map((l) => l.split(" ")[1])).toEqual(ids);
    expect(await b.request("LOGOUT")).toBe("OK BYE");
  });
});

describe("two gateways", () => {
  test("clients of different gateways chat both ways, ALL reaches both gateways", async () => {
    const { c: a } = await login("gw_a", { register: true, address: gw1() });
    const { c: b } = await login("gw_b", { register: true, address: gw2() });
    const { c: c3 } = await login("gw_c", { register: true, address: gw2() });
    const id1 = sentId(await a.request("SEND gw_b from gateway one"));
    expect(await b.waitFor(new RegExp(`^MSG ${re(id1)} `))).toMatch(new RegExp(`^MSG ${re(id1)} gw_a ${ISO_TIME} from gateway one$`));
    const r2 = await b.request("SEND gw_a from gateway two");
    expect(r2).toMatch(/ DELIVERED$/);
    const id2 = sentId(r2);
    expect(await a.waitFor(new RegExp(`^MSG ${re(id2)} `))).toMatch(new RegExp(`^MSG ${re(id2)} gw_b ${ISO_TIME} from gateway two$`));
    expect(await c3.request("ALL hi both gateways")).toMatch(/^OK SENT ALL \d+$/);
    for (const x of [a, b]) expect(await x.waitFor(/^MSG \S+ \*gw_c /)).toMatch(new RegExp(`^MSG ${ID} \\*gw_c ${ISO_TIME} hi both gateways$`));
    // WHO sees the users of both gateways
    const who = (await a.requestAll("WHO")).slice(0, -1).flatMap((l) => l.split(" ").slice(1));
    expect(who).toEqual(expect.arrayContaining(["gw_a", "gw_b", "gw_c"]));
  });
});

describe("withheld pushes", () => {
  test("a MSG the gateway withheld from a classic session is offered again after the session moved elsewhere", async () => {
    const { c: first } = await login("wh_b", { register: true });
    const [at] = await sql<{ gateway: string; addr: string }>(fx.db.url, "SELECT gateway, addr FROM sessions WHERE user_name = 'wh_b'");
    // A classic push counts as delivered when it goes out; this one went to the first address
    // and the gateway withheld it (amplification bound). Its notice is still on its way...
    await sql(fx.db.url, "INSERT INTO messages (id, sent_at, sender, recipient, body, delivered, push_attempts) VALUES ('local:wh-1', now() - interval '5 s', 'someone', 'wh_b', 'withheld once', true, 1)");
    // ... when the user logs in from another address (nothing undelivered to push there yet).
    const second = await client(gw2());
    const from = second.lines.length;
    expect(await second.request("LOGIN wh_b secret1")).toMatch(/^OK LOGIN wh_b /);
    // On the stream that gateway publishes to (the cluster runs one shard).
    const redis = createRedisClient(process.env.REDIS_URL!, {});
    try {
      await redis.xadd(`${fx.prefix}${inStreamOf(at!.gateway, 1)}`, "*", "p", encodeInbound(at!.gateway, [[0, at!.addr, `${WITHHELD}local:wh-1`]]));
    } finally {
      redis.disconnect();
    }
    // The message reached nobody: it is pushed to where the session is now.
    await second.waitFor(/^MSG local:wh-1 someone \S+ withheld once$/, 5000, from);
    expect(linesMatching(first, /^MSG local:wh-1 /)).toEqual([]);
  });
});

describe("reliable delivery (CAP ACK)", () => {
  test("a CAP ACK client that loses the first push still receives the MSG by resend", async () => {
    const { c: a } = await login("rel_a", { register: true });
    const { c: b } = await login("rel_b", { register: true, capAck: true, address: gw2() });
    await sleep(100);
    const from = b.lines.length;
    b.dropNext = 1;
    const id = sentId(await a.request("SEND rel_b survive the loss"));
    const got = await b.waitFor(new RegExp(`^MSG ${re(id)} `), 3000, from);
    expect(got).toMatch(new RegExp(`^MSG ${re(id)} rel_a ${ISO_TIME} survive the loss$`));
    expect(b.dropNext).toBe(0);
    b.send(`ACK ${id}`);
  });

  test("ACK stops the resends", async () => {
    const { c: a } = await login("stop_a", { register: true });
    const { c: b } = await login("stop_b", { register: true, capAck: true });
    const id = sentId(await a.request("SEND stop_b ack me"));
    await b.waitFor(new RegExp(`^MSG ${re(id)} `));
    b.send(`ACK ${id}`);
    await sleep(300);
    const afterAck = msgsWithId(b, id).length;
    // at most one resend can have crossed the ACK on the wire
    expect(afterAck).toBeLessThanOrEqual(2);
    await sleep(1800);
    expect(msgsWithId(b, id)).toHaveLength(afterAck);
    const row = await sql<{ delivered: boolean; next_push_at: Date | null }>(fx.db.url, "SELECT delivered, next_push_at FROM messages WHERE id = $1", [id]);
    expect(row).toEqual([{ delivered: true, next_push_at: null }]);
  });

  test("a CAP ACK client that never ACKs gets resends (at least 3) and the MSG again at the next login; a classic client does not", async () => {
    const { c: a } = await login("nak_a", { register: true });
    // CAP ACK sent before LOGIN is remembered for the address and applied at LOGIN
    const { c: b } = await login("nak_b", { register: true, capAck: true });
    const { c: classic } = await login("nak_classic", { register: true, address: gw2() });
    const idB = sentId(await a.request("SEND nak_b never acked"));
    const idC = sentId(await a.request("SEND nak_classic classic client"));
    await b.waitFor(new RegExp(`^MSG ${re(idB)} `));
    await classic.waitFor(new RegExp(`^MSG ${re(idC)} `));
    // RESEND_BASE_MS=100, 5 attempts: pushes at about 0, 100, 300, 700, 1500 ms
    await sleep(2500);
    expect(msgsWithId(b, idB).length).toBeGreaterThanOrEqual(4);
    expect(msgsWithId(b, idB).length).toBeLessThanOrEqual(5);
    expect(msgsWithId(classic, idC)).toHaveLength(1);

    expect(await b.request("LOGOUT")).toBe("OK BYE");
    expect(await classic.request("LOGOUT")).toBe("OK BYE");
    const fromB = b.lines.length;
    const fromC = classic.lines.length;
    expect(await b.request("LOGIN nak_b secret1")).toMatch(/^OK LOGIN/);
    expect(await classic.request("LOGIN nak_classic secret1")).toMatch(/^OK LOGIN/);
    expect(await b.waitFor(new RegExp(`^MSG ${re(idB)} `), 3000, fromB)).toMatch(/ never acked$/);
    await sleep(500);
    expect(msgsWithId(classic, idC, fromC)).toEqual([]);
    // acknowledged now: the next login offers nothing
    b.send(`ACK ${idB}`);
    await sleep(300);
    expect(await b.request("LOGOUT")).toBe("OK BYE");
    const fromB2 = b.lines.length;
    expect(await b.request("LOGIN nak_b secret1")).toMatch(/^OK LOGIN/);
    await sleep(600);
    expect(msgsWithId(b, idB, fromB2)).toEqual([]);
  });

  test("READ counts as the acknowledgement; a broadcast is never resent", async () => {
    const { c: a } = await login("rda_a", { register: true });
    const { c: b } = await login("rda_b", { register: true, capAck: true });
    const id = sentId(await a.request("SEND rda_b read instead of ack"));
    await b.waitFor(new RegExp(`^MSG ${re(id)} `));
    expect(await b.request(`READ ${id}`)).toMatch(new RegExp(`^MSG ${re(id)} rda_a `));
    await sleep(300);
    const afterRead = msgsWithId(b, id).length;
    expect(afterRead).toBeLessThanOrEqual(2);
    const fromAll = b.lines.length;
    expect(await a.request("ALL broadcast once")).toMatch(/^OK SENT ALL \d+$/);
    await b.waitFor(/^MSG \S+ \*rda_a /, 3000, fromAll);
    await sleep(1800);
    expect(msgsWithId(b, id)).toHaveLength(afterRead);
    expect(linesMatching(b, /^MSG \S+ \*rda_a \S+ broadcast once$/, fromAll)).toHaveLength(1);
    expect(await b.request("LOGOUT")).toBe("OK BYE");
    const from = b.lines.length;
    expect(await b.request("LOGIN rda_b secret1")).toMatch(/^OK LOGIN/);
    await sleep(400);
    expect(linesMatching(b, /^MSG /, from)).toEqual([]);
  });

  test("CAP ACK after LOGIN turns reliable delivery on; RESUME keeps it", async () => {
    const { c: a } = await login("res_a", { register: true });
    const { c: b, token } = await login("res_b", { register: true });
    expect(await b.request("CAP ACK")).toBe("OK CAP ACK");
    const b2 = await client(gw2());
    expect(await b2.request(`RESUME res_b ${token}`)).toMatch(new RegExp(`^OK LOGIN res_b ${token} \\S+$`));
    const from = b2.lines.length;
    b2.dropNext = 2; // the ONLINE push and the first MSG
    const id = sentId(await a.request("SEND res_b after resume"));
    expect(await b2.waitFor(new RegExp(`^MSG ${re(id)} `), 3000, from)).toMatch(/ after resume$/);
    b2.send(`ACK ${id}`);
  });
});

describe("exactly-once SEND under client retry", () => {
  test("the same tagged SEND sent 3 times gives one message and three identical replies; a new tag makes a new message", async () => {
    const { c: a } = await login("dup_a", { register: true });
    const { c: b } = await login("dup_b", { register: true, address: gw2() });
    const datagram = "@retry1 SEND dup_b exactly once please";
    const from = a.lines.length;
    a.send(datagram);
    a.send(datagram);
    await sleep(300);
    a.send(datagram);
    await a.waitFor((l) => linesMatching(a, /^@retry1 /, from).length >= 3, 5000, from).catch(() => undefined);
    await sleep(500);
    const replies = linesMatching(a, /^@retry1 /, from);
    expect(replies).toHaveLength(3);
    expect(new Set(replies).size).toBe(1);
    expect(replies[0]).toMatch(/^@retry1 OK SENT \S+ DELIVERED$/);
    const id = sentId(replies[0]!.slice("@retry1 ".length));
    expect(linesMatching(b, /^MSG .* exactly once please$/)).toEqual([expect.stringMatching(new RegExp(`^MSG ${re(id)} dup_a `))]);
    expect((await b.requestAll("INBOX")).pop()).toBe("OK INBOX 1");

    const again = await a.request("SEND dup_b exactly once please");
    const id2 = sentId(again);
    expect(id2).not.toBe(id);
    a.send("@retry2 SEND dup_b exactly once please");
    const r3 = await a.waitFor(/^@retry2 /);
    const id3 = sentId(r3.slice("@retry2 ".length));
    expect(new Set([id, id2, id3]).size).toBe(3);
    await b.waitFor(new RegExp(`^MSG ${re(id3)} `));
    expect((await b.requestAll("INBOX")).pop()).toBe("OK INBOX 3");
    expect(linesMatching(b, /^MSG .* exactly once please$/)).toHaveLength(3);
  });
});
