/**
 * "A peer may only change what it owns" (docs/peer-protocol.md, Ownership), against real
 * processes: cluster a runs a gateway, a router and peer-sync; b is only a key. The test
 * plays a lying b: every frame below is correctly signed with the a-b key and posted to a's
 * peer-sync over HTTP, as b's peer-sync would. What is checked is what a's users see.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { randomBytes } from "node:crypto";
import { messageId } from "../services/router/src/index.ts";
import { hashPassword } from "../services/router/src/passwords.ts";
import { PeerClient } from "../services/peer-sync/src/index.ts";
import { RawClient } from "./support/udp.ts";
import { sessionSendId } from "@pesan/shared/protocol";
import { loginClient, requestWithTag, sentId } from "./support/e2e.ts";
import { eventually, useLinkedClusters } from "./support/clusters.ts";

// b's peer-sync is never started; a's checks of it are rare, so a's log holds our frames only.
const fx = useLinkedClusters({ names: ["a", "b"], routers: ["a"], start: ["a"], intervalMs: 600_000 });
const { addr, sql } = fx;
const A = () => fx.lc.get("a");

let b: PeerClient;
let txid = 1000;
const EPOCH = `lying-b-${randomBytes(4).toString("hex")}`;

beforeAll(() => {
  b = new PeerClient({ self: "b", peer: "a", baseUrl: A().syncUrl, key: fx.lc.keyOf("a", "b"), timeoutMs: 30_000 });
});
afterAll(() => b?.close());

/** One signed batch from "b"; resolves to a's ack (or rejects with a's refusal). */
function fromB(frames: Array<{ kind: string; data: unknown }>): Promise<unknown> {
  const t = String(txid++);
  return b.post("/v1/frames", { v: 1, kind: "frames", epoch: EPOCH, frames: frames.map((f, i) => ({ txid: t, id: String(i + 1), ...f })) });
}

async function client(): Promise<RawClient> {
  return fx.track(await RawClient.open(addr("a")));
}
async function login(user: string, password: string, register = false) {
  const r = await loginClient(addr("a"), user, password, { register });
  fx.track(r.c);
  return r;
}
async function inbox(c: RawClient): Promise<string[]> {
  const lines = await c.requestAll("INBOX", 5000);
  expect(lines.at(-1)).toMatch(/^OK INBOX \d+$/);
  return lines.slice(0, -1);
}

async function metric(name: string, labels: string): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${A().peerSync.httpPort}/metrics`)).text();
  const line = text.split("\n").find((l) => l.startsWith(`${name}{`) && l.includes(labels));
  return Number(line?.split(" ").at(-1) ?? NaN);
}
const refused = (kind: string, reason: string) => metric("pesan_peer_frames_refused_total", `kind="${kind}",reason="${reason}"`);

function ignoredLog(): Array<{ level: number; peer: string; kind: string; reason: string }> {
  return readFileSync(join(fx.lc.logDir, "peer-sync-a.log"), "utf8")
    .split("\n")
    .filter((l) => l.includes("peer frame ignored"))
    .map((l) => JSON.parse(l) as { level: number; peer: string; kind: string; reason: string });
}

const createdAtOf = async (user: string) => (await sql<{ created_at: Date }>("a", "SELECT created_at FROM users WHERE name = $1", [user]))[0]?.created_at;

test("a user.register for an account homed on a, sent by b with an earlier createdAt, does not take the account over", async () => {
  const { c: alice } = await login("alice", "pw-alice", true);
  const { c: bob } = await login("bob", "pw-bob", true);
  const text = "hello alice, keep this";
  const id = sentId(await bob.request(`SEND alice ${text}`));
  expect(await inbox(alice)).toEqual([expect.stringMatching(new RegExp(`^ITEM ${id} bob \\S+ (NEW|READ) ${text}$`))]);
  alice.close();

  const createdAt = (await createdAtOf("alice"))!;
  const evil = await hashPassword("pw-evil", 10);
  const before = await refused("user.register", "not_home");
  // Earlier than alice's: under the winner rule alone it would replace hers (and cascade her messages).
  await fromB([{ kind: "user.register", data: { name: "alice", passHash: evil, createdAt: new Date(createdAt.getTime() - 86_400_000).toISOString(), home: "a" } }]);

  expect(await (await client()).request("LOGIN alice pw-evil")).toMatch(/^ERR AUTH /);
  const { c: again } = await login("alice", "pw-alice");
  expect(await inbox(again)).toEqual([expect.stringMatching(new RegExp(`^ITEM ${id} bob `))]);
  expect(await sql("a", "SELECT home_cluster, created_at FROM users WHERE name = 'alice'")).toEqual([{ home_cluster: "a", created_at: createdAt }]);
  expect(await sql("a", "SELECT name FROM lost_registrations")).toEqual([]);
  expect(await refused("user.register", "not_home")).toBe(before + 1);
  await eventually(async () => expect(ignoredLog()).toEqual(expect.arrayContaining([expect.objectContaining({ level: 40, peer: "b", kind: "user.register", reason: "not_home" })])), 3000);
});

test("b cannot unregister an account it does not hold; it can the one whose session it holds (UNREGISTER sent there)", async () => {
  await login("carol", "pw-carol", true).then(({ c }) => c.close());
  const carolCreated = (await createdAtOf("carol"))!;
  const before = await refused("user.unregister", "not_owner");
  await fromB([{ kind: "user.unregister", data: { name: "carol", createdAt: carolCreated.toISOString(), at: new Date().toISOString() } }]);
  await login("carol", "pw-carol");
  expect(await refused("user.unregister", "not_owner")).toBe(before + 1);

  // dan (homed on a) logged in at b and sent UNREGISTER there: b holds his session, so it may.
  await login("dan", "pw-dan", true).then(({ c }) => c.close());
  // erin too, through a router of the earlier version: session.down before user.unregister.
  await login("erin", "pw-erin", true).then(({ c }) => c.close());
  const at = new Date().toISOString();
  const up = (user: string) => ({ kind: "session.up", data: { user, token: `tok-${user}`, cluster: "b", capAck: false, at } });
  await fromB([up("dan"), up("erin")]);
  await eventually(async () => expect(await sql("a", "SELECT user_name, cluster FROM sessions WHERE user_name IN ('dan', 'erin') ORDER BY 1")).toEqual([
    { user_name: "dan", cluster: "b" },
    { user_name: "erin", cluster: "b" },
  ]), 3000);
  const unregister = async (user: string) => ({ kind: "user.unregister", data: { name: user, createdAt: (await createdAtOf(user))!.toISOString(), at } });
  await fromB([
    await unregister("dan"),
    { kind: "session.down", data: { user: "dan", token: "tok-dan", cluster: "b", reason: "unregistered", at } },
    { kind: "session.down", data: { user: "erin", token: "tok-erin", cluster: "b", reason: "unregistered", at } },
    await unregister("erin"),
  ]);
  for (const u of ["dan", "erin"]) expect(await (await client()).request(`LOGIN ${u} pw-${u}`)).toMatch(/^ERR AUTH /);
  expect(await refused("user.unregister", "not_owner")).toBe(before + 1);
});

test("b cannot delete a message of a that never left a; a's message in alice's INBOX stays", async () => {
  const { c: alice } = await login("alice", "pw-alice");
  const { c: frank } = await login("frank", "pw-frank", true);
  // alice is online here: pushed at once, delivered, never copied to any peer.
  const id = sentId(await frank.request("SEND alice only a has this"));
  await alice.waitFor(new RegExp(`^MSG ${id} frank `));
  expect(await sql("a", "SELECT replicated FROM messages WHERE id = $1", [id])).toEqual([{ replicated: false }]);
  const before = await refused("message.state", "not_held");
  await fromB([
    { kind: "message.state", data: { id, recipient: "alice", deleted: true } },
    { kind: "message.state", data: { id, recipient: "alice", sender: "frank", sentAt: new Date().toISOString(), body: "x", delivered: true, read: true } },
  ]);
  expect(await inbox(alice)).toEqual(expect.arrayContaining([expect.stringMatching(new RegExp(`^ITEM ${id} frank \\S+ NEW only a has this$`))]));
  expect(await sql("a", "SELECT id FROM message_tombstones WHERE id = $1", [id])).toEqual([]);
  expect(await refused("message.state", "not_held")).toBe(before + 2);
});

/** Every id a's router can give the SEND requests of the next windowMs, from startMs on (seq and index 0 or 1). */
function idsOfA(startMs: number, windowMs: number): string[] {
  const ids: string[] = [];
  for (let ms = startMs; ms < startMs + windowMs; ms++) for (const seq of [0, 1]) for (const i of [0, 1]) ids.push(messageId("a", `${ms}-${seq}`, i));
  return ids;
}

test("b cannot claim ids of a's id space: a's later messages of those ids are delivered, not b's", async () => {
  const { c: gina } = await login("gina", "pw-gina", true);
  const { c: hank } = await login("hank", "pw-hank", true);
  gina.close(); // offline: the messages are stored for her
  const sentAt = new Date().toISOString();
  const real: string[] = [];
  for (const how of ["message.new", "message.state"]) {
    const start = Date.now() + 800;
    const ids = idsOfA(start, 2000);
    const forged = { sentAt, sender: "mallory", recipient: "gina", body: `forged by b (${how})` };
    const before = await refused(how, how === "message.new" ? "foreign_id" : "not_held");
    await fromB(ids.map((id) => ({ kind: how, data: how === "message.new" ? { id, ...forged } : { id, ...forged, delivered: false, read: false } })));
    expect(await refused(how, how === "message.new" ? "foreign_id" : "not_held")).toBe(before + ids.length);
    while (Date.now() < start + 400) await new Promise((r) => setTimeout(r, 20));
    // Untagged: a tagged SEND's id is its session's (t.), not of a's id space.
    const from = hank.lines.length;
    hank.send(`SEND gina the real one (${how})`);
    const id = sentId(await hank.waitFor(/^OK SENT /, 5000, from));
    // Else the test proves nothing: the id must be one b tried to claim.
    expect(ids).toContain(id);
    real.push(id);
  }
  const { c: again } = await login("gina", "pw-gina");
  const items = await inbox(again);
  expect(items).toEqual([
    expect.stringMatching(new RegExp(`^ITEM ${real[0]} hank \\S+ (NEW|READ) the real one \\(message.new\\)$`)),
    expect.stringMatching(new RegExp(`^ITEM ${real[1]} hank \\S+ (NEW|READ) the real one \\(message.state\\)$`)),
  ]);
  expect(await sql("a", "SELECT count(*)::int AS n FROM messages WHERE sender = 'mallory'")).toEqual([{ n: 0 }]);
}, 60_000);

test("b cannot use a tagged SEND's id (t.) to change a message of a: not its content, nor, if it never left a, its state", async () => {
  const { c: mia } = await login("mia", "pw-mia", true);
  const { c: tjo } = await login("tjo", "pw-tjo", true);
  const id = sentId(await requestWithTag(tjo, "j1", "SEND mia a t-id of a's"));
  expect(id).toMatch(/^t\./);
  await mia.waitFor(new RegExp(`^MSG ${id} tjo `));
  const [taken, notHeld] = [await refused("message.new", "taken_id"), await refused("message.state", "not_held")];
  const sentAt = new Date().toISOString();
  await fromB([
    { kind: "message.new", data: { id, sentAt, sender: "mallory", recipient: "mia", body: "overwritten by b" } },
    { kind: "message.state", data: { id, recipient: "mia", deleted: true } },
    { kind: "message.state", data: { id, recipient: "mia", sender: "tjo", sentAt, body: "a t-id of a's", delivered: true, read: true } },
  ]);
  expect(await refused("message.new", "taken_id")).toBe(taken + 1);
  expect(await refused("message.state", "not_held")).toBe(notHeld + 2);
  expect(await sql("a", "SELECT sender, body, read, replicated FROM messages WHERE id = $1", [id])).toEqual([{ sender: "tjo", body: "a t-id of a's", read: false, replicated: false }]);
  expect(await sql("a", "SELECT id FROM message_tombstones WHERE id = $1", [id])).toEqual([]);
});

test("b taking the id of a's next tagged SEND first does not make that send vanish: it is stored under the tag's next id and delivered", async () => {
  const { c: kim } = await login("kim", "pw-kim", true);
  const { c: lou, token } = await login("lou", "pw-lou", true);
  // b knows lou's token (session.up carries it) and guesses the tag: it sends that id first.
  const squatted = sessionSendId(token, "n1", 0);
  await fromB([{ kind: "message.new", data: { id: squatted, sentAt: new Date().toISOString(), sender: "lou", recipient: "kim", body: "put there by b" } }]);
  await eventually(async () => expect(await sql("a", "SELECT body FROM messages WHERE id = $1", [squatted])).toEqual([{ body: "put there by b" }]), 5000);
  const id = sentId(await requestWithTag(lou, "n1", "SEND kim the real one"));
  expect(id).toBe(sessionSendId(token, "n1", 1));
  await kim.waitFor(new RegExp(`^MSG ${id} lou \\S+ the real one$`));
  // Retried with the same tag: the first reply, nothing new.
  expect(await requestWithTag(lou, "n1", "SEND kim the real one")).toMatch(new RegExp(`^OK SENT ${id} `));
  expect(await sql("a", "SELECT count(*)::int AS n FROM messages WHERE body = 'the real one'")).toEqual([{ n: 1 }]);
});

test("a passHash with parameters a router never makes is ignored at the boundary; one stored anyway fails only its own LOGIN", async () => {
  const good = await hashPassword("pw-ivy", 10);
  const [, , , , salt, key] = good.split("$");
  const slow = `scrypt$16$8$64$${salt}$${key}`; // 64x the work of cost 16: ~20 s of scrypt per LOGIN
  const throws = `scrypt$NaN$8$1$${salt}$${key}`; // node:crypto throws
  const createdAt = new Date().toISOString();
  const before = await refused("user.register", "bad_pass_hash");
  // In one batch with a frame b may send: that one applies (b holds jo's session now).
  await login("jo", "pw-jo-1", true).then(({ c }) => c.close());
  const up = { kind: "session.up", data: { user: "jo", token: "tok-jo", cluster: "b", capAck: false, at: new Date().toISOString() } };
  for (const passHash of [slow, throws]) await fromB([{ kind: "user.register", data: { name: "ivy", passHash, createdAt, home: "b" } }, up]);
  expect(await sql("a", "SELECT name FROM users WHERE name = 'ivy'")).toEqual([]);
  expect(await sql("a", "SELECT cluster FROM sessions WHERE user_name = 'jo'")).toEqual([{ cluster: "b" }]);
  expect(await refused("user.register", "bad_pass_hash")).toBe(before + 2);
  // The same account with a hash a router makes is b's to register.
  await fromB([{ kind: "user.register", data: { name: "ivy", passHash: good, createdAt, home: "b" } }]);
  expect(await (await client()).request("LOGIN ivy pw-ivy")).toMatch(/^OK LOGIN ivy /);

  // Hashes stored before the boundary checked them (an earlier peer-sync): each LOGIN of those
  // accounts fails alone and at once, and the logins sent with them are answered.
  await sql("a", "INSERT INTO users (name, pass_hash, home_cluster) VALUES ('slowpoke', $1, 'b'), ('nanny', $2, 'b')", [slow, throws]);
  const clients = await Promise.all([client(), client(), client(), client()]);
  const started = Date.now();
  const replies = await Promise.all([
    clients[0]!.request("LOGIN slowpoke pw-ivy", 5000),
    clients[1]!.request("LOGIN nanny pw-ivy", 5000),
    clients[2]!.request("LOGIN alice pw-alice", 5000),
    clients[3]!.request("LOGIN ivy pw-ivy", 5000),
  ]);
  expect(replies).toEqual([expect.stringMatching(/^ERR AUTH /), expect.stringMatching(/^ERR AUTH /), expect.stringMatching(/^OK LOGIN alice /), expect.stringMatching(/^OK LOGIN ivy /)]);
  expect(Date.now() - started).toBeLessThan(4000);
});
