import path from "node:path";
import { spawn } from "node:child_process";
import { once } from "node:events";
import { PesanClient, PesanError, RequestTimeoutError, ClientClosedError, parseServerAddress, type FailoverEvent, type FullEvent, type MsgLine } from "./client.ts";
import { ScriptedServer, basicHandler, v2Handler, type Handler, type Received } from "./scripted-server.ts";

const servers: ScriptedServer[] = [];
const clients: PesanClient[] = [];

async function server(handler: Handler = basicHandler()): Promise<ScriptedServer> {
  const s = await new ScriptedServer(handler).listen();
  servers.push(s);
  return s;
}

async function client(opts: Partial<ConstructorParameters<typeof PesanClient>[0]> & { servers: string[] }): Promise<PesanClient> {
  const c = new PesanClient({ heartbeatMs: 0, requestTimeoutMs: 1000, ...opts });
  clients.push(c);
  await c.start();
  return c;
}

function nextEvent<T>(c: PesanClient, name: "failover" | "resumed" | "message" | "full", ms = 3000): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`no ${name} event within ${ms} ms`)), ms);
    c.once(name, (e: unknown) => {
      clearTimeout(t);
      resolve(e as T);
    });
  });
}

async function waitUntil(cond: () => boolean, ms = 3000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`not true within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

afterEach(async () => {
  await Promise.all(clients.splice(0).map((c) => c.close()));
  await Promise.all(servers.splice(0).map((s) => s.close()));
});

// ---------------------------------------------------------------------------------------------

describe("PesanClient requests", () => {
  test("tags requests and collects intermediate lines up to the final one", async () => {
    const srv = await server((req, s) => {
      if (req.text === "WHO") {
        // A push and a foreign tag interleave with the reply; both must be ignored by request().
        s.push("MSG m1 bob 2026-11-22T23:40:00.123Z hello", req.from);
        s.push("@other OK WHO 99", req.from);
        return ["ONLINE alice bob", "ONLINE carol", "OK WHO 3"];
      }
      if (req.text === "INBOX") return ["ITEM m1 bob 2026-11-22T23:40:00.123Z NEW hello", "OK INBOX 1"];
      if (req.text === "READ m1") return ["MSG m1 bob 2026-11-22T23:40:00.123Z hello there"];
      if (req.text === "SERVERS") return ["SERVER a 127.0.0.1:1 UP 1/10", "OK SERVERS 1"];
      return ["ERR UNKNOWN_COMMAND X"];
    });
    const c = await client({ servers: [srv.address] });

    const lines = await c.request("WHO");
    expect(lines.map((l) => l.raw.replace(/^@\S+ /, ""))).toEqual(["ONLINE alice bob", "ONLINE carol", "OK WHO 3"]);
    expect(lines.every((l) => l.tag === lines[0]!.tag)).toBe(true);
    expect(srv.received[0]!.tag).toBe(lines[0]!.tag);

    expect(await c.who()).toEqual(["alice", "bob", "carol"]);

    const inbox = await c.request("INBOX");
    expect(inbox.map((l) => l.kind)).toEqual(["ITEM", "OK"]);

    const read = await c.request("READ m1");
    expect(read).toHaveLength(1);
    expect(read[0]).toMatchObject({ kind: "MSG", id: "m1", text: "hello there" });

    expect((await c.request("SERVERS")).map((l) => l.kind)).toEqual(["SERVER", "OK"]);

    const err = await c.request("BOGUS");
    expect(err[0]).toMatchObject({ kind: "ERR", code: "UNKNOWN_COMMAND" });

    // Tags are unique.
    const tags = srv.received.map((r) => r.tag);
    expect(new Set(tags).size).toBe(tags.length);
  });

  test("rejects with a timeout error when no final line comes", async () => {
    const srv = await server((req) => (req.text === "WHO" ? ["ONLINE alice"] : undefined));
    const c = await client({ servers: [srv.address] });
    const t0 = Date.now();
    await expect(c.request("WHO", { timeoutMs: 150 })).rejects.toBeInstanceOf(RequestTimeoutError);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(140);
    await expect(c.request("NOTHING", { timeoutMs: 100 })).rejects.toMatchObject({ code: "TIMEOUT" });
  });

  test("convenience methods: register, login remembers the session, send, logout", async () => {
    const srv = await server((req) => {
      const t = req.text;
      if (t.startsWith("REGISTER alice")) return ["ERR TAKEN that user name is taken"];
      if (t === "LOGIN alice secret1") return ["OK LOGIN alice tok-9", "ONLINE alice"];
      if (t === "SEND bob hi there") return ["OK SENT id42 DELIVERED"];
      if (t === "SEND nobody x") return ["ERR NO_SUCH_USER no such user"];
      if (t === "LOGOUT") return ["OK BYE"];
      return undefined;
    });
    const c = await client({ servers: [srv.address] });
    await expect(c.register("alice", "secret1")).rejects.toMatchObject({ code: "TAKEN" });
    expect(await c.login("alice", "secret1")).toEqual({ user: "alice", token: "tok-9" });
    expect(c.session).toEqual({ user: "alice", token: "tok-9" });
    const sent = await c.send("bob", "hi there");
    expect(sent).toMatchObject({ kind: "OK", word: "SENT", args: ["id42", "DELIVERED"] });
    await expect(c.send("nobody", "x")).rejects.toBeInstanceOf(PesanError);
    await c.logout();
    expect(c.session).toBeUndefined();
  });

  test("ERR FULL from LOGIN with followFull off exposes the alternatives and does not switch", async () => {
    const srv = await server((req) =>
      req.text.startsWith("LOGIN") ? ["ERR FULL 10.0.0.2:4999 [::1]:5000 this server is full, try those"] : undefined,
    );
    const c = await client({ servers: [srv.address], followFull: false });
    const err = (await c.login("alice", "secret1").catch((e: unknown) => e)) as PesanError;
    expect(err).toBeInstanceOf(PesanError);
    expect(err.code).toBe("FULL");
    expect(err.alternatives).toEqual(["10.0.0.2:4999", "[::1]:5000"]);
    expect(c.currentServer).toBe(srv.address);
    expect(c.session).toBeUndefined();
  });

  test("ERR FULL: logs in on the listed servers, nearest first; the password goes nowhere else", async () => {
    const fullHandler = (others: () => string): Handler => (req, s) =>
      req.text.startsWith("LOGIN") ? [`ERR FULL ${others()}`] : basicHandler("tk")(req, s);
    // far: answers, but slowly; nearFull: quick but full too; good: quick, logs in; dead: silent.
    const far = await server((req, s) => {
      if (req.text === "/@live?") {
        setTimeout(() => s.push(req.tag ? `@${req.tag} yes` : "yes", req.from), 150);
        return undefined;
      }
      return basicHandler("tk-far")(req, s);
    });
    const nearFull = await server(fullHandler(() => "10.255.255.1:9"));
    const good = await server(basicHandler("tk-good"));
    const dead = await server(() => undefined);
    const stranger = await server(basicHandler("tk-x")); // in the client's own list, not in the FULL reply
    const home = await server(fullHandler(() => `${far.address} ${dead.address} ${nearFull.address} ${good.address}`));
    const c = await client({ servers: [home.address, stranger.address] });
    const full = nextEvent<FullEvent>(c, "full");
    const moves: FailoverEvent[] = [];
    c.on("failover", (e) => moves.push(e));
    expect(await c.login("alice", "secret1")).toEqual({ user: "alice", token: "tk-good" });
    expect(c.currentServer).toBe(good.address);
    expect(c.session).toEqual({ user: "alice", token: "tk-good" });
    const e = await full;
    expect(e.server).toBe(home.address);
    // The two quick ones may swap places under load (the same millisecond keeps the server's
    // order, jitter may not); the slow one is last whatever happens.
    expect(e.trying.map((t) => t.address).slice(0, 2).sort()).toEqual([nearFull.address, good.address].sort());
    expect(e.trying[2]!.address).toBe(far.address);
    expect(e.unreachable).toEqual([dead.address]);
    expect(moves.every((m) => m.reason === "full")).toBe(true);
    expect(moves.at(-1)).toMatchObject({ to: good.address });
    const logins = (s: ScriptedServer) => s.commands().filter((t) => t.startsWith("LOGIN"));
    expect(logins(home)).toEqual(["LOGIN alice secret1"]);
    expect(logins(good)).toEqual(["LOGIN alice secret1"]);
    expect(logins(nearFull)).toEqual(e.trying[0]!.address === nearFull.address ? ["LOGIN alice secret1"] : []);
    // Probed only: the far one was not needed, the dead one never answered, and neither the
    // client's other server nor the address nearFull offered in turn was ever sent anything.
    expect(logins(far)).toEqual([]);
    expect(dead.commands()).toEqual([]);
    expect(stranger.received).toEqual([]);
  });

  test("ERR FULL everywhere: back on the first server, the ERR FULL thrown", async () => {
    const other = await server((req, s) => (req.text.startsWith("LOGIN") ? ["ERR FULL this server is full, try again later (no other server is up)"] : basicHandler()(req, s)));
    const home = await server((req, s) => (req.text.startsWith("LOGIN") ? [`ERR FULL ${other.address}`] : basicHandler()(req, s)));
    const c = await client({ servers: [home.address] });
    const err = (await c.login("alice", "secret1").catch((e: unknown) => e)) as PesanError;
    expect(err).toBeInstanceOf(PesanError);
    expect(err.code).toBe("FULL");
    expect(err.alternatives).toEqual([other.address]);
    expect(c.currentServer).toBe(home.address);
    expect(c.session).toBeUndefined();
    expect(other.commands().filter((t) => t.startsWith("LOGIN"))).toEqual(["LOGIN alice secret1"]);
  });

  test("parses server addresses", () => {
    expect(parseServerAddress("127.0.0.1:4999")).toEqual({ host: "127.0.0.1", port: 4999 });
    expect(parseServerAddress("[::1]:4999")).toEqual({ host: "::1", port: 4999 });
    expect(parseServerAddress("gw.example:1")).toEqual({ host: "gw.example", port: 1 });
    expect(() => parseServerAddress("::1:4999")).toThrow();
    expect(() => parseServerAddress("host:70000")).toThrow();
    expect(() => new PesanClient({ servers: [] })).toThrow();
  });
});

describe("PesanClient failover", () => {
  test("missed heartbeats move to the next server with CAP ACK then RESUME", async () => {
    const a = await server(basicHandler("tokA"));
    const b = await server(basicHandler("tokA"));
    const c = await client({ servers: [a.address, b.address], heartbeatMs: 100, missedHeartbeats: 3, capAck: true });
    await c.login("alice", "secret1");
    expect(a.commands()).toEqual(["CAP ACK", "LOGIN alice secret1"]);
    await a.waitFor((s) => s.received.some((r) => r.text === "/@live?"));
    expect(c.currentServer).toBe(a.address);

    const failover = nextEvent<FailoverEvent>(c, "failover");
    const resumed = nextEvent<{ server: string; user: string }>(c, "resumed");
    const killedAt = Date.now();
    a.silent = true;
    expect(await failover).toEqual({ from: a.address, to: b.address, reason: "heartbeat" });
    // 3 misses of 100 ms each: not before ~200 ms, not much after ~400 ms.
    expect(Date.now() - killedAt).toBeGreaterThanOrEqual(200);
    expect(await resumed).toEqual({ server: b.address, user: "alice" });
    expect(b.commands()).toEqual(["CAP ACK", "RESUME alice tokA"]);
    expect(c.currentServer).toBe(b.address);
    // Requests now go to b.
    expect(await c.who()).toEqual(["alice"]);
  });

  test("a SEND left unanswered by a server that dies goes again, with the same tag, where the session moved", async () => {
    const base = basicHandler("tokA");
    // a takes the SEND and dies before answering it (silent from then on, heartbeats too).
    const a = await server((req, srv) => {
      if (!/^SEND /.test(req.text)) return base(req, srv);
      srv.silent = true;
      return undefined;
    });
    const b = await server((req, srv) => (/^SEND /.test(req.text) ? ["OK SENT t.same DELIVERED"] : base(req, srv)));
    const c = await client({ servers: [a.address, b.address], heartbeatMs: 100, missedHeartbeats: 3, requestTimeoutMs: 300 });
    await c.login("alice", "secret1");
    const r = await c.send("bob", "hello once");
    expect(r.raw).toMatch(/ OK SENT t.same DELIVERED$/);
    expect(c.currentServer).toBe(b.address);
    const sendsA = a.received.filter((x) => x.text === "SEND bob hello once");
    const sendsB = b.received.filter((x) => x.text === "SEND bob hello once");
    expect(sendsA.length).toBeGreaterThanOrEqual(1);
    expect(sendsB).toHaveLength(1);
    // The same tag everywhere: the servers' exactly-once makes it one message.
    expect(new Set([...sendsA, ...sendsB].map((x) => x.tag)).size).toBe(1);
    // RESUME came before the resend on b.
    expect(b.commands().indexOf("RESUME alice tokA")).toBeLessThan(b.commands().indexOf("SEND bob hello once"));
    expect(b.commands()[0]).toBe("RESUME alice tokA");
  });

  test("a SEND whose reply was lost goes again to the same live server with the same tag; other requests are not resent", async () => {
    const base = basicHandler("tokA");
    let sends = 0;
    const a = await server((req, srv) => (/^SEND /.test(req.text) ? (++sends === 1 ? [] : ["OK SENT t.one DELIVERED"]) : req.text === "WHO" ? [] : base(req, srv)));
    const c = await client({ servers: [a.address], heartbeatMs: 100, requestTimeoutMs: 200 });
    await c.login("alice", "secret1");
    expect((await c.send("bob", "hi")).raw).toMatch(/ OK SENT t.one DELIVERED$/);
    const tags = a.received.filter((x) => x.text === "SEND bob hi").map((x) => x.tag);
    expect(tags).toHaveLength(2);
    expect(tags[0]).toBe(tags[1]);
    await expect(c.request("WHO", { timeoutMs: 150 })).rejects.toBeInstanceOf(RequestTimeoutError);
    expect(a.received.filter((x) => x.text === "WHO")).toHaveLength(1);
  });

  test("keeps moving through the list when the next server is dead too, wrapping around", async () => {
    const a = await server(basicHandler("t1"));
    const dead = await server(basicHandler("t1"));
    dead.silent = true;
    const c = await client({ servers: [a.address, dead.address], heartbeatMs: 100, missedHeartbeats: 2, capAck: false, requestTimeoutMs: 2000 });
    await c.login("alice", "secret1");
    const hops: FailoverEvent[] = [];
    c.on("failover", (e) => hops.push(e));
    const resumed = new Promise<{ server: string }>((resolve) => c.on("resumed", resolve));

    a.silent = true;
    await dead.waitFor((s) => s.commands().includes("RESUME alice t1"));
    a.silent = false; // a comes back; the client must wrap around to it and resume there
    expect(await resumed).toEqual({ server: a.address, user: "alice" });
    expect(hops.map((h) => h.to)).toEqual([dead.address, a.address]);
    expect(a.commands()).toEqual(["LOGIN alice secret1", "RESUME alice t1"]);
  });

  test("REDIRECT from an address that is not a known server is ignored", async () => {
    const a = await server(basicHandler("tx"));
    const stranger = await server(basicHandler("tx"));
    const c = await client({ servers: [a.address], heartbeatMs: 0 });
    const errors: string[] = [];
    c.on("error", (e) => errors.push(e.message));
    await c.login("alice", "secret1");
    stranger.push(`REDIRECT ${stranger.address}`, { address: "127.0.0.1", port: c.localPort! });
    await new Promise((r) => setTimeout(r, 200));
    expect(c.currentServer).toBe(a.address);
    expect(c.servers).toEqual([a.address]);
    expect(errors).toEqual([`REDIRECT from ${stranger.address}, which is not in the server list, ignored`]);
  });

  test("learnServers: after LOGIN the servers SERVERS lists join the list, and a REDIRECT from one of them is followed", async () => {
    const b = await server(basicHandler("tl"));
    const a = await server((req, s) => (req.text === "SERVERS" ? [`SERVER a ${a.address} UP 1/0`, `SERVER b ${b.address} UP 0/0`, "OK SERVERS 2"] : basicHandler("tl")(req, s)));
    const c = await client({ servers: [a.address], heartbeatMs: 0, learnServers: true });
    await c.login("alice", "secret1");
    await waitUntil(() => c.servers.length === 2);
    expect(c.servers).toEqual([a.address, b.address]);
    const failover = nextEvent<FailoverEvent>(c, "failover");
    b.push(`REDIRECT ${b.address}`, { address: "127.0.0.1", port: c.localPort! });
    expect(await failover).toEqual({ from: a.address, to: b.address, reason: "redirect" });
  });

  test("REDIRECT switches to the given server and resumes there", async () => {
    const a = await server(basicHandler("tr"));
    const b = await server(basicHandler("tr"));
    const c = await client({ servers: [a.address, b.address], heartbeatMs: 0, capAck: true });
    await c.login("alice", "secret1");
    const failover = nextEvent<FailoverEvent>(c, "failover");
    const resumed = nextEvent<{ server: string }>(c, "resumed");
    b.push(`REDIRECT ${b.address}`, { address: "127.0.0.1", port: c.localPort! });
    expect(await failover).toEqual({ from: a.address, to: b.address, reason: "redirect" });
    expect(await resumed).toEqual({ server: b.address, user: "alice" });
    expect(b.commands()).toEqual(["CAP ACK", "RESUME alice tr"]);
    expect(c.currentServer).toBe(b.address);
    expect(c.servers).toEqual([a.address, b.address]);
    await c.who();
    expect(b.commands()).toContain("WHO");
    expect(a.commands()).not.toContain("WHO");
  });

  test("RESUME refused as UNAVAILABLE is retried after a good heartbeat; ERR AUTH forgets the session", async () => {
    const a = await server(basicHandler("tu"));
    let unavailable = 1;
    const b = await server((req, s) => {
      if (req.text.startsWith("RESUME") && unavailable-- > 0) return ["ERR UNAVAILABLE service unavailable"];
      return basicHandler("tu")(req, s);
    });
    const c = await client({ servers: [a.address, b.address], heartbeatMs: 80, missedHeartbeats: 2 });
    const errors: string[] = [];
    c.on("error", (e) => errors.push(e.message));
    await c.login("alice", "secret1");
    const resumed = nextEvent<{ server: string }>(c, "resumed");
    a.silent = true;
    expect(await resumed).toEqual({ server: b.address, user: "alice" });
    expect(b.commands()).toEqual(["RESUME alice tu", "RESUME alice tu"]);
    expect(errors.some((m) => m.includes("UNAVAILABLE"))).toBe(true);

    // Now b forgets the token: the next failover (back to a) gets ERR AUTH.
    a.silent = false;
    a.handler = (req, s) => (req.text.startsWith("RESUME") ? ["ERR AUTH wrong user name, password or token"] : basicHandler("tu")(req, s));
    const failover = nextEvent<FailoverEvent>(c, "failover");
    b.silent = true;
    expect((await failover).to).toBe(a.address);
    await a.waitFor(() => c.session === undefined);
    expect(errors.some((m) => m.includes("RESUME: ERR AUTH"))).toBe(true);
  });

  test("a BYE push forgets the session, so failover does not RESUME", async () => {
    const a = await server(basicHandler());
    const b = await server(basicHandler());
    const c = await client({ servers: [a.address, b.address], heartbeatMs: 80, missedHeartbeats: 2 });
    await c.login("alice", "secret1");
    const pushes: string[] = [];
    c.on("push", (l) => pushes.push(l.raw));
    a.push("BYE replaced", { address: "127.0.0.1", port: c.localPort! });
    await a.waitFor(() => pushes.length > 0);
    expect(c.session).toBeUndefined();
    const failover = nextEvent<FailoverEvent>(c, "failover");
    a.silent = true;
    await failover;
    await b.waitFor((s) => s.received.some((r) => r.text === "/@live?"));
    expect(b.commands()).toEqual([]);
  });
});

describe("PesanClient pushes", () => {
  test("MSG pushes are deduplicated by id and each one is ACKed when capAck", async () => {
    const srv = await server(basicHandler());
    const c = await client({ servers: [srv.address], capAck: true });
    await c.login("alice", "secret1");
    const messages: MsgLine[] = [];
    c.on("message", (m) => messages.push(m));
    const to = { address: "127.0.0.1", port: c.localPort! };
    srv.push("MSG m1 bob 2026-11-22T23:40:00.123Z hello", to);
    srv.push("MSG m1 bob 2026-11-22T23:40:00.123Z hello", to); // a resend
    srv.push("MSG m2 *carol 2026-11-22T23:40:01.000Z to all\nwith a newline", to);
    await srv.waitFor((s) => s.commands().filter((t) => t.startsWith("ACK ")).length === 3);
    expect(srv.commands().filter((t) => t.startsWith("ACK "))).toEqual(["ACK m1", "ACK m1", "ACK m2"]);
    expect(srv.received.filter((r) => r.text.startsWith("ACK ")).every((r) => r.tag === undefined)).toBe(true);
    expect(messages.map((m) => [m.id, m.from, m.text])).toEqual([
      ["m1", "bob", "hello"],
      ["m2", "*carol", "to all\nwith a newline"],
    ]);
  });

  test("without capAck nothing is ACKed and no CAP ACK is sent", async () => {
    const srv = await server(basicHandler());
    const c = await client({ servers: [srv.address] });
    await c.login("alice", "secret1");
    const got = nextEvent<MsgLine>(c, "message");
    srv.push("MSG m1 bob 2026-11-22T23:40:00.123Z hello", { address: "127.0.0.1", port: c.localPort! });
    expect((await got).id).toBe("m1");
    await c.who(); // a round trip after the push
    expect(srv.commands()).toEqual(["LOGIN alice secret1", "WHO"]);
  });

  test("CAP ACK refused before login (NOT_LOGGED_IN) is sent again after OK LOGIN", async () => {
    let loggedIn = false;
    const srv = await server((req) => {
      if (req.text === "CAP ACK") return [loggedIn ? "OK CAP ACK" : "ERR NOT_LOGGED_IN log in first"];
      if (req.text.startsWith("LOGIN")) {
        loggedIn = true;
        return ["OK LOGIN alice t"];
      }
      return undefined;
    });
    const c = await client({ servers: [srv.address], capAck: true });
    await c.login("alice", "secret1");
    await srv.waitFor((s) => s.commands().length === 3);
    expect(srv.commands()).toEqual(["CAP ACK", "LOGIN alice secret1", "CAP ACK"]);
  });
});

describe("PesanClient lifecycle", () => {
  test("close() is idempotent, rejects pending requests and stops everything", async () => {
    const srv = await server(() => undefined);
    const c = await client({ servers: [srv.address], heartbeatMs: 50 });
    const pending = c.request("WHO", { timeoutMs: 10_000 });
    const closing = c.close();
    expect(c.close()).toBe(closing);
    await expect(pending).rejects.toBeInstanceOf(ClientClosedError);
    await closing;
    await expect(c.request("WHO")).rejects.toBeInstanceOf(ClientClosedError);
    expect(() => c.sendRaw("WHO")).toThrow(ClientClosedError);
    const before = srv.received.length;
    await new Promise((r) => setTimeout(r, 150));
    expect(srv.received.length).toBe(before); // no heartbeats after close
  });

  test("sendRaw sends one untagged datagram", async () => {
    const srv = await server(() => undefined);
    const c = await client({ servers: [srv.address] });
    c.sendRaw("/who");
    await srv.waitFor((s) => s.received.length === 1);
    expect(srv.received[0]).toMatchObject({ tag: undefined, text: "/who" });
  });
});

// ---------------------------------------------------------------------------------------------

/** What the client sent since index `from`, heartbeats left out. */
const sentSince = (srv: ScriptedServer, from = 0): Received[] => srv.received.slice(from).filter((r) => r.text !== "/@live?");

describe("PesanClient session proofs (protocol v2)", () => {
  test("after OK LOGIN with a key every datagram is signed with it, seq from 1, and a proven PING goes first", async () => {
    const srv = await server(v2Handler());
    const c = await client({ servers: [srv.address], capAck: true, heartbeatMs: 100 });
    expect(c.proving).toBe(false);
    await c.login("alice", "secret1");
    expect(c.proving).toBe(true);
    // Before the key: CAP ACK and LOGIN plain.
    expect(srv.received.slice(0, 2).map((r) => [r.text, r.proof])).toEqual([
      ["CAP ACK", undefined],
      ["LOGIN alice secret1", undefined],
    ]);
    const afterLogin = srv.received.length;
    await srv.waitFor((s) => s.commands().includes("PING"));
    expect(await c.who()).toEqual(["alice"]);
    expect((await c.send("bob", "hi")).raw).toMatch(/OK SENT id1 DELIVERED$/);
    srv.push("MSG m1 bob 2026-11-22T23:40:00.123Z hello", { address: "127.0.0.1", port: c.localPort! });
    await srv.waitFor((s) => s.commands().includes("ACK m1"));
    c.sendRaw("@mine WHO");
    await srv.waitFor((s) => s.received.some((r) => r.tag === "mine"));
    await srv.waitFor((s) => s.received.slice(afterLogin).some((r) => r.text === "/@live?"));

    const after = srv.received.slice(afterLogin);
    expect(after[0]!.text).toBe("PING");
    // Everything after the key, heartbeats, ACK and sendRaw included, carries a valid proof,
    // numbered 1, 2, 3, ... in the order sent.
    expect(after.every((r) => r.proof?.valid === true)).toBe(true);
    expect(after.map((r) => r.proof!.seq)).toEqual(after.map((_, i) => i + 1));
    expect(after.map((r) => r.text)).toEqual(expect.arrayContaining(["PING", "WHO", "SEND bob hi", "ACK m1", "/@live?"]));
  });

  test("a v1 server (OK LOGIN without a key): the client stays plain", async () => {
    const srv = await server(basicHandler());
    const c = await client({ servers: [srv.address], capAck: true });
    await c.login("alice", "secret1");
    await c.who();
    expect(c.proving).toBe(false);
    expect(srv.received.every((r) => r.proof === undefined && !r.raw.startsWith("~"))).toBe(true);
    expect(srv.commands()).not.toContain("PING");
  });

  test("an OK LOGIN that answers no request of ours (untagged, from the server's own address) sets no key", async () => {
    const srv = await server(v2Handler());
    const c = await client({ servers: [srv.address] });
    await c.login("alice", "secret1");
    const key = srv.key;
    srv.push("OK LOGIN alice tokv2 AAECAwQFBgcICQoLDA0ODw", { address: "127.0.0.1", port: c.localPort! });
    srv.push("@zz OK LOGIN alice tokv2 AAECAwQFBgcICQoLDA0ODw", { address: "127.0.0.1", port: c.localPort! });
    await new Promise((r) => setTimeout(r, 100));
    const from = srv.received.length;
    expect(await c.who()).toEqual(["alice"]);
    expect(srv.key).toBe(key);
    expect(srv.received[from]!.proof?.valid).toBe(true); // still signed with the key the server issued
  });

  test("failover drops the key: RESUME goes plain, its reply's key signs what follows, from seq 1", async () => {
    const a = await server(v2Handler("tf"));
    const b = await server(v2Handler("tf"));
    const c = await client({ servers: [a.address, b.address], heartbeatMs: 80, missedHeartbeats: 2, capAck: true });
    await c.login("alice", "secret1");
    const resumed = nextEvent<{ server: string }>(c, "resumed");
    a.silent = true;
    expect(await resumed).toEqual({ server: b.address, user: "alice" });
    expect(c.proving).toBe(true);
    expect(await c.who()).toEqual(["alice"]);
    const onB = sentSince(b);
    expect(onB.slice(0, 2).map((r) => [r.text, r.proof])).toEqual([
      ["CAP ACK", undefined],
      ["RESUME alice tf", undefined],
    ]);
    const signed = onB.slice(2);
    expect(signed.map((r) => r.text)).toEqual(expect.arrayContaining(["PING", "WHO"]));
    expect(signed.every((r) => r.proof?.valid === true)).toBe(true);
    expect(signed[0]!.proof!.seq).toBe(1);
    // Nothing signed with b's key went to a, and a's key never reached b (b checks against its own).
    expect(b.key).not.toBe(a.key);
  });

  test("a second LOGIN replaces the key", async () => {
    const srv = await server(v2Handler());
    const c = await client({ servers: [srv.address] });
    await c.login("alice", "secret1");
    const first = srv.key;
    await c.login("alice", "secret1");
    expect(srv.key).not.toBe(first);
    // The second LOGIN went signed with the first key (a proof session takes no plain LOGIN).
    expect(srv.received.filter((r) => r.text === "LOGIN alice secret1").map((r) => r.proof?.valid ?? "plain")).toEqual(["plain", true]);
    await c.who();
    expect(srv.received.find((r) => r.text === "WHO")).toMatchObject({ proof: { valid: true, seq: expect.any(Number) } });
  });

  test("ERR NOT_LOGGED_IN after a gateway restart: RESUME (plain), a new key, and the request is sent once more", async () => {
    const srv = await server(v2Handler("tg"));
    const c = await client({ servers: [srv.address] });
    const resumed: string[] = [];
    c.on("resumed", (e) => resumed.push(e.server));
    await c.login("alice", "secret1");
    await srv.waitFor((s) => s.commands().includes("PING"));
    srv.forgetKeys(); // the gateway restarted
    const from = srv.received.length;
    const sent = await c.send("bob", "after the restart");
    expect(sent.raw).toMatch(/OK SENT id1 DELIVERED$/);
    const seen = sentSince(srv, from).map((r) => [r.text, r.proof?.valid ?? "plain"]);
    expect(seen.slice(0, 2)).toEqual([
      ["SEND bob after the restart", false],
      ["RESUME alice tg", "plain"],
    ]);
    expect(seen).toContainEqual(["SEND bob after the restart", true]);
    expect(seen.filter(([t]) => t === "SEND bob after the restart")).toHaveLength(2);
    expect(resumed).toEqual([srv.address]);
    expect(c.sessionPhase).toBe("bound");
  });

  test("with retryAfterResume false the caller gets the ERR NOT_LOGGED_IN, and the client re-binds anyway", async () => {
    const srv = await server(v2Handler("tn"));
    const c = await client({ servers: [srv.address] });
    await c.login("alice", "secret1");
    srv.forgetKeys();
    const err = (await c.send("bob", "x", { retryAfterResume: false }).catch((e: unknown) => e)) as PesanError;
    expect(err).toBeInstanceOf(PesanError);
    expect(err.code).toBe("NOT_LOGGED_IN");
    await srv.waitFor((s) => s.commands().includes("RESUME alice tn"));
    await waitUntil(() => c.sessionPhase === "bound");
    expect(sentSince(srv).filter((r) => r.text === "SEND bob x")).toHaveLength(1);
  });

  test("the proven PING after login answered NOT_LOGGED_IN: the client resumes at once", async () => {
    let first = true;
    const srv = await server((req, s) => {
      if (req.text === "PING" && first) {
        first = false;
        s.forgetKeys();
        return ["ERR NOT_LOGGED_IN proof not valid for this address; RESUME"];
      }
      return v2Handler("tp")(req, s);
    });
    const c = await client({ servers: [srv.address] });
    await c.login("alice", "secret1");
    await srv.waitFor((s) => s.commands().includes("RESUME alice tp"));
    await waitUntil(() => c.sessionPhase === "bound" && c.proving);
    expect(srv.received.find((r) => r.text === "RESUME alice tp")!.proof).toBeUndefined();
  });
});

describe("PesanClient listens only to its server", () => {
  test("MSG, BYE and REDIRECT from an unrelated socket are ignored (no ACK to it either)", async () => {
    const srv = await server(basicHandler());
    const stranger = await server(basicHandler());
    const c = await client({ servers: [srv.address], capAck: true });
    const errors: string[] = [];
    const messages: string[] = [];
    const lines: string[] = [];
    c.on("error", (e) => errors.push(e.message));
    c.on("message", (m) => messages.push(m.id));
    c.on("line", (l) => lines.push(l.raw));
    await c.login("alice", "secret1");
    const to = { address: "127.0.0.1", port: c.localPort! };
    stranger.push("MSG f1 admin 2026-01-01T00:00:00.000Z forged", to);
    stranger.push("BYE replaced", to);
    stranger.push(`REDIRECT ${stranger.address}`, to);
    srv.push("MSG m1 bob 2026-11-22T23:40:00.123Z real", to);
    await srv.waitFor((s) => s.commands().includes("ACK m1"));
    await new Promise((r) => setTimeout(r, 100));
    expect(messages).toEqual(["m1"]);
    expect(lines.some((l) => l.includes("forged") || l.startsWith("BYE") || l.startsWith("REDIRECT"))).toBe(false);
    expect(c.session).toEqual({ user: "alice", token: "tok123" });
    expect(c.currentServer).toBe(srv.address);
    expect(stranger.received).toEqual([]); // no ACK, no RESUME
    expect(errors).toEqual([
      `MSG from ${stranger.address}, which is not the current server ${srv.address}, ignored`,
      `BYE from ${stranger.address}, which is not the current server ${srv.address}, ignored`,
      `REDIRECT from ${stranger.address}, which is not in the server list, ignored`,
    ]);
  });

  test("a REDIRECT to an unlisted address gets no token, from the current server or from a listed one", async () => {
    const a = await server(basicHandler("tt"));
    const b = await server(basicHandler("tt"));
    const trap = await server(basicHandler("tt"));
    const c = await client({ servers: [a.address, b.address], capAck: true });
    const errors: string[] = [];
    c.on("error", (e) => errors.push(e.message));
    await c.login("alice", "secret1");
    const to = { address: "127.0.0.1", port: c.localPort! };
    a.push(`REDIRECT ${trap.address}`, to);
    b.push(`REDIRECT ${trap.address}`, to);
    await new Promise((r) => setTimeout(r, 300));
    expect(trap.received).toEqual([]);
    expect(c.currentServer).toBe(a.address);
    expect(c.servers).toEqual([a.address, b.address]); // not spliced in
    expect(errors).toEqual([
      `REDIRECT from ${a.address} to ${trap.address}, which is not in the server list, ignored`,
      `REDIRECT from ${b.address} to ${trap.address}, which is not in the server list, ignored`,
    ]);
    expect(b.commands()).toEqual([]);
  });

  test("a listed server that is not the current one may redirect only to itself", async () => {
    const a = await server(basicHandler("ts"));
    const b = await server(basicHandler("ts"));
    const d = await server(basicHandler("ts"));
    const c = await client({ servers: [a.address, b.address, d.address] });
    const errors: string[] = [];
    c.on("error", (e) => errors.push(e.message));
    await c.login("alice", "secret1");
    b.push(`REDIRECT ${d.address}`, { address: "127.0.0.1", port: c.localPort! });
    await new Promise((r) => setTimeout(r, 200));
    expect(c.currentServer).toBe(a.address);
    expect(d.received).toEqual([]);
    expect(errors).toEqual([`REDIRECT from ${b.address} to another server (${d.address}), ignored: a server may only redirect to itself`]);
    // The current server may send us to any listed server.
    const resumed = nextEvent<{ server: string }>(c, "resumed");
    a.push(`REDIRECT ${d.address}`, { address: "127.0.0.1", port: c.localPort! });
    expect(await resumed).toEqual({ server: d.address, user: "alice" });
    expect(d.commands()).toEqual(["RESUME alice ts"]);
  });

  test("a reply carrying our tag from another address does not answer the request", async () => {
    const stranger = await server(() => undefined);
    const srv = await server((req) => {
      if (req.text === "WHO") {
        stranger.push(`@${req.tag} OK WHO 99`, req.from); // a guessed tag from elsewhere
        setTimeout(() => srv.push(`@${req.tag} OK WHO 1`, req.from), 50);
      }
      return undefined;
    });
    const c = await client({ servers: [srv.address] });
    const lines = await c.request("WHO");
    expect(lines.map((l) => l.raw.replace(/^@\S+ /, ""))).toEqual(["OK WHO 1"]);
  });
});

// ---------------------------------------------------------------------------------------------

const CHAT = path.join(__dirname, "chat.ts");

function runChat(args: string[], input: string | undefined, ms = 15_000, env: Record<string, string> = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CHAT, ...args], { stdio: ["pipe", "pipe", "pipe"], env: { ...process.env, PESAN_PASSWORD: "", ...env } });
    let stdout = "";
    let stderr = "";
    child.stdout.setEncoding("utf8").on("data", (d: string) => (stdout += d));
    child.stderr.setEncoding("utf8").on("data", (d: string) => (stderr += d));
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`chat did not exit within ${ms} ms; stdout=${stdout} stderr=${stderr}`));
    }, ms);
    child.on("error", reject);
    child.on("close", (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
    if (input !== undefined) child.stdin.end(input);
  });
}

describe("chat CLI", () => {
  test("--help prints usage and exits 0", async () => {
    const r = await runChat(["--help"], "");
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/usage: pnpm chat/);
    expect(r.stdout).toMatch(/--server/);
  });

  test("a bad option exits 2 with usage on stderr", async () => {
    const r = await runChat(["--bogus"], "");
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/usage: pnpm chat/);
  });

  test("--version prints the version and exits 0", async () => {
    const r = await runChat(["--version"], "");
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^pesan chat \d+\.\d+\.\d+\n$/);
  });

  test("--help says --password is visible in ps, and names PESAN_PASSWORD and the escapes", async () => {
    const r = await runChat(["--help"], "");
    expect(r.stdout).toMatch(/--password P .*VISIBLE[\s\S]*\(ps, \/proc\)/);
    expect(r.stdout).toContain("PESAN_PASSWORD");
    expect(r.stdout).toContain("\\e (ESC)");
  });

  test("--user without a password and without a terminal exits 2 saying where a password comes from", async () => {
    const r = await runChat(["--server", "127.0.0.1:9", "--user", "alice"], "");
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/needs a password: set PESAN_PASSWORD/);
  });

  test("PESAN_PASSWORD logs --user in; control characters received are escaped, and nothing is coloured in a pipe", async () => {
    const srv = await server((req, s) => {
      const replies = basicHandler("tk")(req, s);
      if (req.text.startsWith("LOGIN")) setImmediate(() => s.push("MSG m7 bob\x1b[31m 2026-11-22T23:40:00.123Z a\nMSG x:1 admin 2026-01-01T00:00:00.000Z b\x1b[2J\x9b", req.from));
      return replies;
    });
    const r = await runChat(["--server", srv.address, "--user", "alice", "--no-cap-ack"], "", 15_000, { PESAN_PASSWORD: "secret1" });
    expect(r.code).toBe(0);
    expect(srv.commands()).toContain("LOGIN alice secret1");
    expect(r.stdout.split("\n").filter((l) => l.length > 0)).toEqual(["OK LOGIN alice tk", "MSG m7 bob\\e[31m 2026-11-22T23:40:00.123Z a\\nMSG x:1 admin 2026-01-01T00:00:00.000Z b\\e[2J\\u009b"]);
    expect(r.stderr).toMatch(/\* logged in as alice on /);
    expect(r.stdout + r.stderr).not.toMatch(/[\x1b\x9b]/);
    expect(r.stderr).not.toContain("secret1");
  });

  test("sends stdin lines as commands and prints replies without tags", async () => {
    const srv = await server((req, s) => {
      const replies = basicHandler("tk")(req, s);
      if (req.text.startsWith("LOGIN")) setImmediate(() => s.push("MSG m7 bob 2026-11-22T23:40:00.123Z welcome back", req.from));
      return replies;
    });
    const r = await runChat(["--server", srv.address], "LOGIN alice secret1\n/who\n");
    expect(r.code).toBe(0);
    const out = r.stdout.split("\n").filter((l) => l.length > 0);
    expect(out).toEqual(["OK LOGIN alice tk", "MSG m7 bob 2026-11-22T23:40:00.123Z welcome back", "ONLINE alice", "OK WHO 1"]);
    expect(r.stdout).not.toMatch(/> /);
    expect(r.stderr).toMatch(/^\* connected to /m);
    // CAP ACK first (on by default), then the commands; the pushed MSG was ACKed; after the
    // login the CLI asks SERVERS in the background, to know every cluster it may fail over to.
    expect(srv.commands().filter((t) => !t.startsWith("ACK ") && t !== "SERVERS")).toEqual(["CAP ACK", "LOGIN alice secret1", "/who"]);
    expect(srv.commands()).toContain("SERVERS");
    expect(srv.commands()).toContain("ACK m7");
  });

  test("--user/--password/--register log in at start; --no-cap-ack sends no CAP ACK", async () => {
    const srv = await server((req, s) => (req.text.startsWith("REGISTER") ? ["ERR TAKEN that user name is taken"] : basicHandler("tk")(req, s)));
    const r = await runChat(["--server", srv.address, "--user", "alice", "--password", "secret1", "--register", "--no-cap-ack"], "WHO\n");
    expect(r.code).toBe(0);
    expect(r.stdout.split("\n").filter((l) => l.length > 0)).toEqual(["ERR TAKEN that user name is taken", "OK LOGIN alice tk", "ONLINE alice", "OK WHO 1"]);
    expect(r.stderr).toMatch(/\* logged in as alice/);
    expect(srv.commands().filter((t) => t !== "SERVERS")).toEqual(["REGISTER alice secret1", "LOGIN alice secret1", "WHO"]);
  });

  test("SIGTERM logs out and exits", async () => {
    const srv = await server(basicHandler("tk"));
    const child = spawn(process.execPath, [CHAT, "--server", srv.address, "--user", "alice", "--password", "secret1"], { stdio: ["pipe", "pipe", "pipe"] });
    let stderr = "";
    child.stderr.setEncoding("utf8").on("data", (d: string) => (stderr += d));
    child.stdout.resume();
    try {
      await srv.waitFor((s) => s.commands().includes("LOGIN alice secret1"), 10_000);
      const deadline = Date.now() + 5000;
      while (!stderr.includes("logged in") && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      const closed = once(child, "close");
      child.kill("SIGTERM");
      const [code] = (await closed) as [number | null];
      expect(code).toBe(0);
      expect(srv.commands()).toContain("LOGOUT");
    } finally {
      child.kill("SIGKILL");
    }
  });
});
