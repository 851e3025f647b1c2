/**
 * Exactly-once SEND across clusters (issue 15, docs/protocol.md "Tags"): a SEND left unanswered
 * by a dying cluster and retried, with the same tag, where the client RESUMEs (what the client
 * library does after a failover) is one message. Two linked clusters a and b with real
 * processes: ann sends on A to bob, who is on B. A takes the SEND, commits it, and its reply
 * never reaches ann (the raw client drops it, as a network would); A is then killed -9. ann
 * RESUMEs on B and sends again with the same tag.
 *  (a) A's message.new reached B before A died: the retry is answered with A's id; nothing new.
 *  (b) It did not (A's peer-sync was killed first, so nothing left A): B stores the send under
 *      the same id; when A comes back and its outbox drains, B finds that id and adds nothing.
 * Either way bob gets one MSG, and each cluster has one message, in the same state.
 */
import { RawClient } from "./support/udp.ts";
import { loginClient, re } from "./support/e2e.ts";
import { eventually, useLinkedClusters } from "./support/clusters.ts";

const fx = useLinkedClusters({ names: ["a", "b"], intervalMs: 200, env: { OUTBOX_POLL_MS: "50" } }, 120_000);
const { addr, sql } = fx;

type Row = { id: string; sender: string; recipient: string; body: string; delivered: boolean; replicated: boolean };
const copies = async (at: string, body: string) =>
  sql<Row>(at, "SELECT id, sender, recipient, body, delivered, replicated FROM messages WHERE body = $1 ORDER BY id", [body]);
const msgsOf = (c: RawClient, body: string) => c.lines.filter((l) => new RegExp(`^MSG \\S+ ann \\S+ ${re(body)}$`).test(l));

/** Every process of a cluster, killed -9 (the database stays: nobody writes to it meanwhile). */
async function kill9(name: string): Promise<void> {
  const c = fx.lc.get(name);
  await Promise.all([c.peerSync.kill9(), ...c.cluster!.routers.map((p) => p.kill9()), ...c.cluster!.gateways.map((p) => p.kill9())]);
}
async function restart(name: string): Promise<void> {
  const c = fx.lc.get(name);
  await Promise.all([...c.cluster!.routers.map((p) => p.restart()), ...c.cluster!.gateways.map((p) => p.restart()), c.peerSync.restart()]);
}

async function heldBy(user: string, cluster: string, where: string[], timeoutMs = 10_000): Promise<void> {
  for (const at of where) {
    await eventually(async () => expect((await sql<{ cluster: string }>(at, "SELECT cluster FROM sessions WHERE user_name = $1", [user])).map((r) => r.cluster)).toEqual([cluster]), timeoutMs);
  }
}

/** bob logs in on a cluster; his INBOX there, as `<id> <body>`. */
async function inboxOn(at: string): Promise<{ c: RawClient; items: string[] }> {
  const { c } = await loginClient(addr(at), "bob", "pw-bob");
  fx.track(c);
  const lines = await c.requestAll("INBOX", 5000);
  expect(lines.at(-1)).toMatch(/^OK INBOX \d+$/);
  return { c, items: lines.slice(0, -1).map((l) => l.split(" ")).map((w) => `${w[1]} ${w.slice(5).join(" ")}`) };
}

/** ann logs in on A (and both clusters know it); returns her client and token. */
async function annOnA(): Promise<{ ann: RawClient; token: string }> {
  const { c: ann, token } = await loginClient(addr("a"), "ann", "pw-ann");
  fx.track(ann);
  await heldBy("ann", "a", ["a", "b"]);
  return { ann, token };
}

/**
 * ann sends `@<tag> SEND bob <body>` on A; A's reply is lost on its way to her, and the test
 * waits until A's database has the message. Returns its id.
 */
async function sendUnanswered(ann: RawClient, tag: string, body: string): Promise<string> {
  ann.dropNext = 1;
  const from = ann.lines.length;
  ann.send(`@${tag} SEND bob ${body}`);
  const [m] = await eventually(async () => {
    const rows = await copies("a", body);
    expect(rows).toHaveLength(1);
    return rows;
  }, 10_000, 50);
  // The reply went out and was dropped: ann has seen nothing.
  expect(ann.lines.slice(from)).toEqual([]);
  return m!.id;
}

/** ann RESUMEs on B and retries the SEND with the same tag; returns the reply. */
async function retryOnB(token: string, tag: string, body: string): Promise<string> {
  const ann = fx.track(await RawClient.open(addr("b")));
  expect(await ann.request(`RESUME ann ${token}`)).toMatch(new RegExp(`^OK LOGIN ann ${re(token)}( \\S+)?$`));
  const from = ann.lines.length;
  ann.send(`@${tag} SEND bob ${body}`);
  const reply = await ann.waitFor((l) => l.startsWith(`@${tag} `), 10_000, from);
  return reply.slice(tag.length + 2);
}

let bob: RawClient;

beforeAll(async () => {
  const reg = fx.track(await RawClient.open(addr("a")));
  for (const [u, p] of [["ann", "pw-ann"], ["bob", "pw-bob"]]) expect(await reg.request(`REGISTER ${u} ${p}`)).toBe(`OK REGISTERED ${u}`);
  await eventually(async () => expect(await sql("b", "SELECT name FROM users WHERE name IN ('ann', 'bob')")).toHaveLength(2), 10_000);
  bob = fx.track((await loginClient(addr("b"), "bob", "pw-bob")).c);
  await heldBy("bob", "b", ["a", "b"]);
}, 120_000);

test("(a) A's message.new reached B, then A died unanswered: the retry on B gets A's id, bob has one MSG, both clusters one message", async () => {
  const body = "sent once, A then died";
  const { ann, token } = await annOnA();
  const id = await sendUnanswered(ann, "s1", body);
  // A's copy went to B (bob is there), which pushed it to bob; then A dies.
  await eventually(async () => expect((await copies("b", body)).map((r) => r.id)).toEqual([id]), 10_000, 50);
  await bob.waitFor((l) => l.startsWith(`MSG ${id} ann `), 10_000);
  await kill9("a");

  expect(await retryOnB(token, "s1", body)).toBe(`OK SENT ${id} DELIVERED`);
  expect(id).toMatch(/^t\./);
  // Nothing new on B: one copy, delivered, and no second push (a second would be a MSG of bob's).
  await eventually(async () => expect(await copies("b", body)).toEqual([expect.objectContaining({ id, sender: "ann", recipient: "bob", delivered: true })]), 5000);
  await bob.settle(500);
  expect(msgsOf(bob, body)).toEqual([expect.stringMatching(new RegExp(`^MSG ${re(id)} `))]);

  // A comes back and learns the delivery (B's message.state): one message there too, delivered.
  await restart("a");
  await eventually(async () => expect(await copies("a", body)).toEqual([expect.objectContaining({ id, delivered: true })]), 20_000, 200);
  await heldBy("ann", "b", ["a", "b"], 20_000);
  // What bob sees logging in on either cluster: the one message, in the INBOX, not pushed again.
  for (const at of ["a", "b"]) {
    const { c, items } = await inboxOn(at);
    expect(items.filter((i) => i.endsWith(body))).toEqual([`${id} ${body}`]);
    expect(msgsOf(c, body)).toEqual([]);
    bob = c; // on B at the end, for (b)
  }
  for (const at of ["a", "b"]) expect(await copies(at, body)).toHaveLength(1);
}, 120_000);

test("(b) nothing left A before it died: B stores the retry under the same id; A's late message.new adds nothing; one message everywhere", async () => {
  const body = "stored on A, never left it";
  await heldBy("bob", "b", ["a", "b"], 20_000);
  const { ann, token } = await annOnA();
  // A's peer-sync dies first, so A's copy for bob waits in A's outbox.
  await fx.lc.get("a").peerSync.kill9();
  const id = await sendUnanswered(ann, "s2", body);
  expect(await sql("a", "SELECT 1 FROM peer_outbox WHERE kind = 'message.new' AND payload->>'id' = $1", [id])).not.toHaveLength(0);
  expect(await copies("b", body)).toEqual([]);
  await kill9("a");

  // B never saw it: the retry is stored there, under the id A gave it, and pushed to bob.
  expect(await retryOnB(token, "s2", body)).toBe(`OK SENT ${id} DELIVERED`);
  await bob.waitFor((l) => l.startsWith(`MSG ${id} ann `), 10_000);
  expect((await copies("b", body)).map((r) => r.id)).toEqual([id]);

  // A comes back; its outbox drains to B. B takes A's message.new as the same send (its copy
  // becomes replicated) and sends its state back, so A's copy ends delivered.
  await restart("a");
  await eventually(async () => expect(await copies("b", body)).toEqual([expect.objectContaining({ id, delivered: true, replicated: true })]), 20_000, 200);
  await eventually(async () => expect(await copies("a", body)).toEqual([expect.objectContaining({ id, delivered: true })]), 20_000, 200);
  await bob.settle(500);
  expect(msgsOf(bob, body)).toEqual([expect.stringMatching(new RegExp(`^MSG ${re(id)} `))]);
  for (const at of ["a", "b"]) {
    const { c, items } = await inboxOn(at);
    expect(items.filter((i) => i.endsWith(body))).toEqual([`${id} ${body}`]);
    expect(msgsOf(c, body)).toEqual([]);
  }
  for (const at of ["a", "b"]) expect(await copies(at, body)).toHaveLength(1);
}, 120_000);
