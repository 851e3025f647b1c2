import { signDatagram } from "@pesan/shared/protocol";
import { Transport, type Datagram } from "./transport.ts";
import { ClientClosedError, RequestTimeoutError } from "./errors.ts";
import { ScriptedServer, v2Handler, basicHandler } from "./scripted-server.ts";

const open: Array<{ close(): Promise<void> }> = [];
afterEach(async () => {
  await Promise.all(open.splice(0).map((x) => x.close()));
});

async function server(h = basicHandler()): Promise<ScriptedServer> {
  const s = await new ScriptedServer(h).listen();
  open.push(s);
  return s;
}

async function transport(o: ConstructorParameters<typeof Transport>[0]): Promise<Transport> {
  const t = new Transport(o);
  open.push(t);
  await t.start();
  return t;
}

test("request: tagged, matched, signed once a key is set; sendBytes never signs", async () => {
  const srv = await server(v2Handler());
  const seen: Datagram[] = [];
  const t = await transport({ target: srv.address, onDatagram: (d) => seen.push(d) });
  const login = await t.request("LOGIN alice secret1", { timeoutMs: 1000 });
  expect(login.map((l) => l.kind)).toEqual(["OK"]);
  expect(t.key).toBeUndefined(); // the library's state machine decides, not the transport (autoProof off)
  t.useKey(srv.key);
  const who = await t.request("WHO", { timeoutMs: 1000 });
  expect(who.map((l) => l.kind)).toEqual(["ONLINE", "OK"]);
  t.sendBytes("~1.AAAAAAAAAAAAAAAA raw");
  t.send("PING");
  await srv.waitFor((s) => s.received.length === 4);
  expect(srv.received.map((r) => [r.text, r.proof?.valid ?? "plain"])).toEqual([
    ["LOGIN alice secret1", "plain"],
    ["WHO", true],
    ["raw", false], // a forged proof, sent as given
    ["PING", true],
  ]);
  expect(srv.received[2]!.raw).toBe("~1.AAAAAAAAAAAAAAAA raw");
  expect(srv.received[1]!.raw).toBe(signDatagram(srv.key!, 1, `@${srv.received[1]!.tag} WHO`));
  expect(seen.every((d) => d.fromTarget && d.from === srv.address)).toBe(true);
});

test("autoProof: the key of an OK LOGIN answering us is taken, a proven PING follows; OK BYE drops it", async () => {
  const srv = await server((req, s) => (/^LOGOUT$/.test(req.text) ? ["OK BYE"] : v2Handler()(req, s)));
  const t = await transport({ target: srv.address, autoProof: true });
  await t.request("LOGIN alice secret1", { timeoutMs: 1000 });
  expect(t.key).toBe(srv.key);
  await srv.waitFor((s) => s.received.some((r) => r.text === "PING"));
  expect(srv.received.find((r) => r.text === "PING")!.proof).toEqual({ seq: 1, valid: true });
  await t.request("LOGOUT", { timeoutMs: 1000 });
  expect(t.key).toBeUndefined();
});

test("a reply from another address does not answer a request unless matchAnySource", async () => {
  const srv = await server(() => undefined);
  const other = await server(() => undefined);
  const strict = await transport({ target: srv.address });
  const p = strict.request("WHO", { timeoutMs: 300, tag: "t1" });
  await srv.waitFor((s) => s.received.length === 1);
  other.push("@t1 OK WHO 1", srv.received[0]!.from);
  await expect(p).rejects.toBeInstanceOf(RequestTimeoutError);

  const loose = await transport({ target: srv.address, matchAnySource: true });
  const q = loose.request("WHO", { timeoutMs: 1000, tag: "t2" });
  await srv.waitFor((s) => s.received.length === 2);
  other.push("@t2 OK WHO 1", srv.received[1]!.from);
  expect((await q).map((l) => l.raw)).toEqual(["@t2 OK WHO 1"]);
});

test("a host name target is resolved, so its replies are recognised as the target's", async () => {
  const srv = await server(basicHandler());
  const seen: Datagram[] = [];
  const t = await transport({ target: `localhost:${srv.port}`, onDatagram: (d) => seen.push(d) });
  expect(t.target).toBe(`localhost:${srv.port}`);
  expect(t.isTarget(srv.address)).toBe(true);
  expect((await t.request("/@live?", { timeoutMs: 1000 }))[0]!.kind).toBe("YES");
  expect(seen[0]!.fromTarget).toBe(true);
});

test("retarget drops the key; close rejects what waits and is idempotent; inbound can drop", async () => {
  const a = await server(v2Handler());
  const b = await server(() => undefined);
  let drop = 1;
  const t = await transport({ target: a.address, inbound: () => drop-- <= 0 });
  await expect(t.request("/@live?", { timeoutMs: 200 })).rejects.toBeInstanceOf(RequestTimeoutError); // its reply dropped
  expect((await t.request("/@live?", { timeoutMs: 1000 }))[0]!.kind).toBe("YES");
  t.useKey("AAECAwQFBgcICQoLDA0ODw");
  await t.retarget(b.address);
  expect(t.key).toBeUndefined();
  expect(t.isTarget(b.address)).toBe(true);
  expect(t.isTarget(a.address)).toBe(false);
  const waiting = t.request("WHO", { timeoutMs: 10_000 });
  const closing = t.close();
  expect(t.close()).toBe(closing);
  await expect(waiting).rejects.toBeInstanceOf(ClientClosedError);
  expect(() => t.send("x")).toThrow(ClientClosedError);
  expect(() => t.useKey("short")).toThrow(/not a session key/);
});
