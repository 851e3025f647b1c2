/**
 * Every command's success path and every error code of the client protocol (PROTOCOL.md),
 * through a real gateway and router (1 + 1 processes), exactly as a netcat user sees them.
 */
import { ID, ID_RE, ISO_TIME, linesMatching, re, sentId, sleep, sql } from "./support/e2e.ts";
import { useCluster } from "./support/fixture.ts";

const fx = useCluster("protocol", { gateways: 1, routers: 1, env: { SERVERS: "peer1=127.0.0.1:5901,peer2=10.9.8.7:4999", QUOTA: "500" } });
const { client } = fx;
const user = (name: string, password = "secret1") => fx.login(name, password, { register: true });

describe("REGISTER", () => {
  test("OK, TAKEN, BAD_PASSWORD, bad name", async () => {
    const c = await client();
    expect(await c.request("REGISTER reg_alice secret1")).toBe("OK REGISTERED reg_alice");
    expect(await c.request("REGISTER reg_alice another1")).toMatch(/^ERR TAKEN \S/);
    expect(await c.request("REGISTER reg_bob 12345")).toMatch(/^ERR BAD_PASSWORD \S/);
    expect(await c.request(`REGISTER reg_bob ${"p".repeat(129)}`)).toMatch(/^ERR BAD_PASSWORD \S/);
    expect(await c.request("REGISTER bad!name secret1")).toMatch(/^ERR BAD_REQUEST \S/);
    expect(await c.request(`REGISTER ${"a".repeat(33)} secret1`)).toMatch(/^ERR BAD_REQUEST \S/);
    expect(await c.request("REGISTER reg_only")).toMatch(/^ERR BAD_REQUEST \S/);
    // the refused names were not created
    expect(await c.request("REGISTER reg_bob secret1")).toBe("OK REGISTERED reg_bob");
  });
});

describe("LOGIN", () => {
  test("OK LOGIN <user> <token>, then an untagged ONLINE push that includes the user", async () => {
    const c = await client();
    expect(await c.request("REGISTER li_alice secret1")).toBe("OK REGISTERED li_alice");
    const from = c.lines.length;
    const reply = await c.request("LOGIN li_alice secret1");
    // the token: 24 URL-safe characters (docs/protocol.md)
    expect(reply).toMatch(/^OK LOGIN li_alice [A-Za-z0-9_-]{24} [A-Za-z0-9_-]{22}$/);
    const online = await c.waitFor(/^ONLINE /, 5000, from);
    expect(online.split(" ").slice(1)).toContain("li_alice");
    // pushes are untagged
    expect(linesMatching(c, /^@\S+ ONLINE/, from)).toEqual([]);
  });

  test("ERR AUTH for a wrong password and the same reply for an unknown user", async () => {
    const c = await client();
    expect(await c.request("REGISTER li_bob secret1")).toBe("OK REGISTERED li_bob");
    const wrong = await c.request("LOGIN li_bob wrongpass");
    const unknown = await c.request("LOGIN li_nobody secret1");
    expect(wrong).toMatch(/^ERR AUTH \S/);
    expect(unknown).toBe(wrong);
    // no session was bound
    expect(await c.request("WHO")).toMatch(/^ERR NOT_LOGGED_IN/);
  });

  test("a user name that is not valid: ERR AUTH on LOGIN, ERR NO_SUCH_USER on SEND", async () => {
    const c = await client();
    expect(await c.request("LOGIN bad!name secret1")).toMatch(/^ERR AUTH/);
    const { c: a } = await user("li_carol");
    expect(await a.request("SEND bad!name hi")).toMatch(/^ERR NO_SUCH_USER/);
  });

  test("another user logging in from the same address ends the first user's session there", async () => {
    const c = await client();
    expect(await c.request("REGISTER li_dan secret1")).toBe("OK REGISTERED li_dan");
    expect(await c.request("REGISTER li_eve secret1")).toBe("OK REGISTERED li_eve");
    expect(await c.request("LOGIN li_dan secret1")).toMatch(/^OK LOGIN li_dan /);
    expect(await c.request("LOGIN li_eve secret1")).toMatch(/^OK LOGIN li_eve /);
    const who = (await c.requestAll("WHO")).slice(0, -1).flatMap((l) => l.split(" ").slice(1));
    expect(who).toContain("li_eve");
    expect(who).not.toContain("li_dan");
    const { c: other } = await user("li_frank");
    expect(await other.request("SEND li_dan you are offline")).toMatch(/ STORED$/);
  });
});

describe("RESUME", () => {
  test("OK from a new address with the token; ERR AUTH for a wrong token", async () => {
    const { c, token } = await user("re_alice");
    const d = await client();
    expect(await d.request("RESUME re_alice wrongtoken123")).toMatch(/^ERR AUTH \S/);
    expect(await d.request("WHO")).toMatch(/^ERR NOT_LOGGED_IN/);
    const from = d.lines.length;
    expect(await d.request(`RESUME re_alice ${token}`)).toMatch(new RegExp(`^OK LOGIN re_alice ${token} \\S+$`));
    const online = await d.waitFor(/^ONLINE /, 5000, from);
    expect(online.split(" ")).toContain("re_alice");
    // the session now lives at the new address
    expect(await d.request("WHO")).toMatch(/^OK WHO \d+$/);
    expect(await c.request("WHO")).toMatch(/^ERR NOT_LOGGED_IN/);
    // unknown user: AUTH too
    expect(await d.request(`RESUME re_nobody ${token}`)).toMatch(/^ERR AUTH \S/);
  });
});

describe("WHO", () => {
  test("ONLINE lines then OK WHO <count>, every line tagged", async () => {
    const { c } = await user("who_a");
    await user("who_b");
    const from = c.lines.length;
    const lines = await c.requestAll("WHO");
    const last = lines[lines.length - 1]!;
    const count = Number(/^OK WHO (\d+)$/.exec(last)?.[1]);
    const users = lines.slice(0, -1).flatMap((l) => {
      expect(l).toMatch(/^ONLINE( \S+)*$/);
      return l.split(" ").slice(1);
    });
    expect(users).toEqual(expect.arrayContaining(["who_a", "who_b"]));
    expect(users).toHaveLength(count);
    await sleep(200);
    // nothing of the reply came untagged
    expect(linesMatching(c, /^(ONLINE|OK WHO)/, from)).toEqual([]);
  });
});

describe("SEND", () => {
  test("DELIVERED to an online user, who gets MSG <id> <from> <time> <text>", async () => {
    const { c: a } = await user("snd_a");
    const { c: b } = await user("snd_b");
    const reply = await a.request("SEND snd_b hello there");
    expect(reply).toMatch(new RegExp(`^OK SENT ${ID} DELIVERED$`));
    const id = sentId(reply);
    expect(id).toMatch(ID_RE);
    expect(await b.waitFor(/^MSG /)).toMatch(new RegExp(`^MSG ${re(id)} snd_a ${ISO_TIME} hello there$`));
  });

  test("STORED for an offline user", async () => {
    const a = (await user("sto_a")).c;
    const c = await client();
    expect(await c.request("REGISTER sto_b secret1")).toBe("OK REGISTERED sto_b");
    expect(await a.request("SEND sto_b for later")).toMatch(new RegExp(`^OK SENT ${ID} STORED$`));
  });

  test("NO_SUCH_USER, TOO_LONG at 4001 bytes (4000 is fine)", async () => {
    const { c: a } = await user("long_a");
    const { c: b } = await user("long_b");
    expect(await a.request("SEND nobody_here hi")).toMatch(/^ERR NO_SUCH_USER/);
    expect(await a.request(`SEND long_b ${"x".repeat(4001)}`)).toMatch(/^ERR TOO_LONG/);
    expect(await a.request(`SEND long_b ${"é".repeat(2000)}x`)).toMatch(/^ERR TOO_LONG/);
    const id = sentId(await a.request(`SEND long_b ${"y".repeat(4000)}`));
    expect(await b.waitFor(new RegExp(`^MSG ${re(id)} `))).toMatch(new RegExp(`^MSG ${re(id)} long_a ${ISO_TIME} y{4000}$`));
  });

  test("text with spaces, an embedded newline and unicode is delivered verbatim", async () => {
    const { c: a } = await user("vb_a");
    const { c: b } = await user("vb_b");
    const text = "  two  spaces\nsecond line\twith tab  😀 émoji ";
    const id = sentId(await a.request(`SEND vb_b ${text}`));
    const msg = await b.waitFor(new RegExp(`^MSG ${re(id)} `));
    const m = new RegExp(`^MSG ${re(id)} vb_a (${ISO_TIME}) ([\\s\\S]*)$`).exec(msg);
    expect(m?.[2]).toBe(text);
    // READ gives the same text back
    expect(await b.request(`READ ${id}`)).toBe(`MSG ${id} vb_a ${m?.[1]} ${text}`);
  });

  test("SEND to yourself works", async () => {
    const { c: a } = await user("self_a");
    const id = sentId(await a.request("SEND self_a note to self"));
    expect(await a.waitFor(new RegExp(`^MSG ${re(id)} `))).toMatch(new RegExp(`^MSG ${re(id)} self_a ${ISO_TIME} note to self$`));
  });
});

describe("ALL", () => {
  test("every online user but the sender gets MSG with from *<user>; n counts them", async () => {
    const { c: a } = await user("all_a");
    const { c: b } = await user("all_b");
    const { c: c3 } = await user("all_c");
    const who = await a.requestAll("WHO");
    const online = Number(/^OK WHO (\d+)$/.exec(who[who.length - 1]!)?.[1]);
    const fromA = a.lines.length;
    const reply = await a.request("ALL hello everyone");
    expect(reply).toBe(`OK SENT ALL ${online - 1}`);
    for (const x of [b, c3]) expect(await x.waitFor(/^MSG \S+ \*all_a /)).toMatch(new RegExp(`^MSG ${ID} \\*all_a ${ISO_TIME} hello everyone$`));
    await sleep(200);
    expect(linesMatching(a, /^MSG /, fromA)).toEqual([]);
    // a broadcast is never stored: not in the recipients' inbox
    expect(await b.requestAll("INBOX")).toEqual(["OK INBOX 0"]);
  });
});

describe("INBOX, READ, DELETE", () => {
  test("ITEM <id> <from> <time> NEW|READ <first 60 chars>, oldest first, tagged; READ marks read", async () => {
    const { c: a } = await user("ib_a");
    const { c: b } = await user("ib_b");
    const long = `${"0123456789".repeat(6)}TAIL that is cut`;
    const id1 = sentId(await a.request("SEND ib_b first"));
    const id2 = sentId(await a.request(`SEND ib_b ${long}`));
    const id3 = sentId(await a.request("SEND ib_b line one\nline two"));
    const from = b.lines.length;
    const lines = await b.requestAll("INBOX");
    expect(lines).toHaveLength(4);
    expect(lines[0]).toMatch(new RegExp(`^ITEM ${re(id1)} ib_a ${ISO_TIME} NEW first$`));
    expect(lines[1]).toMatch(new RegExp(`^ITEM ${re(id2)} ib_a ${ISO_TIME} NEW ${"0123456789".repeat(6)}$`));
    // the preview stays on one line
    expect(lines[2]).toMatch(new RegExp(`^ITEM ${re(id3)} ib_a ${ISO_TIME} NEW line one line two$`));
    expect(lines[3]).toBe("OK INBOX 3");
    await sleep(200);
    expect(linesMatching(b, /^(ITEM|OK INBOX)/, from)).toEqual([]);

    // READ returns the whole message and marks it read
    const read = await b.request(`READ ${id2}`);
    expect(read).toMatch(new RegExp(`^MSG ${re(id2)} ib_a ${ISO_TIME} ${re(long)}$`));
    const after = await b.requestAll("INBOX");
    expect(after[0]).toMatch(/ NEW first$/);
    expect(after[1]).toMatch(new RegExp(`^ITEM ${re(id2)} ib_a ${ISO_TIME} READ `));
    expect(after[2]).toMatch(/ NEW line one/);
  });

  test("INBOX lists the newest 100 messages, oldest first, delivered or not, read or not", async () => {
    const { c: a } = await user("ib100_a");
    const reg = await client();
    expect(await reg.request("REGISTER ib100_b secret1")).toBe("OK REGISTERED ib100_b");
    const ids: string[] = [];
    for (let i = 1; i <= 105; i++) ids.push(sentId(await a.request(`SEND ib100_b number ${i}`)));
    const b = (await fx.login("ib100_b", "secret1")).c;
    expect(await b.request(`READ ${ids[104]}`)).toMatch(/ number 105$/);
    const lines = await b.requestAll("INBOX");
    expect(lines).toHaveLength(101);
    expect(lines[100]).toBe("OK INBOX 100");
    const listed = lines.slice(0, 100).map((l) => l.split(" ")[1]);
    expect(listed).toEqual(ids.slice(5));
    expect(lines[0]).toMatch(/ NEW number 6$/);
    expect(lines[99]).toMatch(/ READ number 105$/);
  });

  test("READ: NO_SUCH_MESSAGE for an unknown id and for someone else's message", async () => {
    const { c: a } = await user("rd_a");
    const { c: b } = await user("rd_b");
    const { c: eve } = await user("rd_eve");
    const id = sentId(await a.request("SEND rd_b private"));
    expect(await b.request("READ no-such-id:123")).toMatch(/^ERR NO_SUCH_MESSAGE/);
    expect(await eve.request(`READ ${id}`)).toMatch(/^ERR NO_SUCH_MESSAGE/);
    // the sender cannot read it either: it is the recipient's
    expect(await a.request(`READ ${id}`)).toMatch(/^ERR NO_SUCH_MESSAGE/);
    // still NEW for its recipient
    const inbox = await b.requestAll("INBOX");
    expect(inbox[0]).toMatch(new RegExp(`^ITEM ${re(id)} rd_a ${ISO_TIME} NEW private$`));
  });

  test("DELETE: OK DELETED, then gone; NO_SUCH_MESSAGE; only the recipient's own", async () => {
    const { c: a } = await user("del_a");
    const { c: b } = await user("del_b");
    const id1 = sentId(await a.request("SEND del_b one"));
    const id2 = sentId(await a.request("SEND del_b two"));
    // not the sender's and not a third user's to delete
    expect(await a.request(`DELETE ${id1}`)).toMatch(/^ERR NO_SUCH_MESSAGE/);
    expect(await b.request(`DELETE ${id1}`)).toBe(`OK DELETED ${id1}`);
    const inbox = await b.requestAll("INBOX");
    expect(inbox).toHaveLength(2);
    expect(inbox[0]).toMatch(new RegExp(`^ITEM ${re(id2)} `));
    expect(inbox[1]).toBe("OK INBOX 1");
    expect(await b.request(`DELETE ${id1}`)).toMatch(/^ERR NO_SUCH_MESSAGE/);
    expect(await b.request(`READ ${id1}`)).toMatch(/^ERR NO_SUCH_MESSAGE/);
    expect(await b.request("DELETE nothing-here")).toMatch(/^ERR NO_SUCH_MESSAGE/);
  });
});

describe("CAP ACK and ACK", () => {
  test("CAP ACK answers OK CAP ACK before and after LOGIN", async () => {
    const c = await client();
    expect(await c.request("CAP ACK")).toBe("OK CAP ACK");
    expect(await c.request("cap ack")).toBe("OK CAP ACK");
    expect(await c.request("REGISTER cap_a secret1")).toBe("OK REGISTERED cap_a");
    expect(await c.request("LOGIN cap_a secret1")).toMatch(/^OK LOGIN cap_a \S+ \S+$/);
    expect(await c.request("CAP ACK")).toBe("OK CAP ACK");
    expect(await c.request("CAP NOPE")).toMatch(/^ERR BAD_REQUEST/);
  });

  // ACK has no reply (PROTOCOL.md: "ACK <id> | (none)"). Regression test: the gateway used to
  // keep an ACK pending and answer `ERR UNAVAILABLE` after BACKEND_TIMEOUT_MS (2 s).
  test("ACK <id> gets no reply at all (not even ERR UNAVAILABLE after the backend timeout)", async () => {
    const { c: a } = await user("ack_a");
    const { c: b } = await fx.login("ack_b", "secret1", { register: true, capAck: true });
    const id = sentId(await a.request("SEND ack_b please ack"));
    await b.waitFor(new RegExp(`^MSG ${re(id)} `));
    const from = b.lines.length;
    b.send(`ACK ${id}`);
    b.send(`@ackt ACK ${id}`);
    const seen = await b.settle(2800, from);
    expect(seen.filter((l) => !l.startsWith("MSG "))).toEqual([]);
  });
});

describe("SERVERS", () => {
  test("this server first (UP online/quota), then the SERVERS entries (DOWN), then OK SERVERS n; no session needed", async () => {
    await user("srv_a");
    // Without a session an address gets at most 3x the bytes it sent: the first line fits, not all.
    const stranger = await client();
    stranger.send("@srv0 SERVERS");
    const cut = await stranger.settle(800);
    expect(cut.length).toBeGreaterThanOrEqual(1);
    expect(cut.length).toBeLessThan(4);
    expect(cut.reduce((n, l) => n + Buffer.byteLength(l) + 1, 0)).toBeLessThanOrEqual(3 * Buffer.byteLength("@srv0 SERVERS"));
    // A plain session (netcat) gets the whole list.
    const { c } = await user("srv_b");
    const lines = await c.requestAll("SERVERS");
    expect(lines).toHaveLength(4);
    expect(lines[0]).toMatch(new RegExp(`^SERVER local ${re(fx.address)} UP \\d+/500$`));
    expect(Number(/ UP (\d+)\//.exec(lines[0]!)?.[1])).toBeGreaterThanOrEqual(1);
    expect(lines[1]).toMatch(/^SERVER peer1 127\.0\.0\.1:5901 DOWN \d+\/\d+$/);
    expect(lines[2]).toMatch(/^SERVER peer2 10\.9\.8\.7:4999 DOWN \d+\/\d+$/);
    expect(lines[3]).toBe("OK SERVERS 3");
  });
});

describe("LOGOUT and UNREGISTER", () => {
  test("LOGOUT: OK BYE, then NOT_LOGGED_IN", async () => {
    const { c } = await user("lo_a");
    expect(await c.request("LOGOUT")).toBe("OK BYE");
    expect(await c.request("WHO")).toMatch(/^ERR NOT_LOGGED_IN/);
    expect(await c.request("LOGOUT")).toMatch(/^ERR NOT_LOGGED_IN/);
    // and the user is offline for others
    const { c: d } = await user("lo_b");
    const who = (await d.requestAll("WHO")).slice(0, -1).flatMap((l) => l.split(" ").slice(1));
    expect(who).not.toContain("lo_a");
  });

  test("UNREGISTER: AUTH on a wrong password; OK UNREGISTERED; then the name can be registered again", async () => {
    const { c } = await user("un_a", "firstpass");
    const { c: other } = await user("un_b");
    expect(await other.request("SEND un_a before")).toMatch(/^OK SENT \S+ DELIVERED$/);
    expect(await c.request("UNREGISTER wrongpass")).toMatch(/^ERR AUTH/);
    expect(await c.request("WHO")).toMatch(/^OK WHO/);
    expect(await c.request("UNREGISTER firstpass")).toBe("OK UNREGISTERED");
    expect(await c.request("WHO")).toMatch(/^ERR NOT_LOGGED_IN/);
    expect(await c.request("LOGIN un_a firstpass")).toMatch(/^ERR AUTH/);
    expect(await other.request("SEND un_a after")).toMatch(/^ERR NO_SUCH_USER/);
    expect(await c.request("REGISTER un_a secondpass")).toBe("OK REGISTERED un_a");
    expect(await c.request("LOGIN un_a firstpass")).toMatch(/^ERR AUTH/);
    expect(await c.request("LOGIN un_a secondpass")).toMatch(/^OK LOGIN un_a \S+ \S+$/);
    // the new account starts with an empty inbox
    expect(await c.requestAll("INBOX")).toEqual(["OK INBOX 0"]);
  });
});

describe("framing", () => {
  test("/@live? -> yes, verbatim; tagged heartbeat -> tagged yes", async () => {
    const c = await client();
    c.send("/@live?\n");
    expect(await c.waitFor(/^yes$/)).toBe("yes");
    c.send("@hb1 /@live?");
    expect(await c.waitFor(/^@hb1 /)).toBe("@hb1 yes");
    c.send("@hb2 @live?\r\n");
    expect(await c.waitFor(/^@hb2 /)).toBe("@hb2 yes");
    // not the heartbeat: a space after it, or another case
    c.send("@hb3 /@LIVE?");
    expect(await c.waitFor(/^@hb3 /)).toMatch(/^@hb3 ERR UNKNOWN_COMMAND /);
  });

  test("command words are case-insensitive and may start with /", async () => {
    const c = await client();
    expect(await c.request("/register cs_a secret1")).toBe("OK REGISTERED cs_a");
    expect(await c.request("/LoGiN cs_a secret1")).toMatch(/^OK LOGIN cs_a \S+ \S+$/);
    expect(await c.request("who")).toMatch(/^OK WHO \d+$/);
    expect(await c.request("/Who")).toMatch(/^OK WHO \d+$/);
    expect(await c.request("/send cs_a Case Kept")).toMatch(/^OK SENT \S+ DELIVERED$/);
    expect(await c.waitFor(/^MSG /)).toMatch(/ cs_a \S+ Case Kept$/);
    // netcat's trailing newline (and \r\n) is stripped
    c.send("@nl1 WHO\n");
    expect(await c.waitFor(/^@nl1 OK/)).toMatch(/^@nl1 OK WHO \d+$/);
    c.send("@nl2 WHO\r\n");
    expect(await c.waitFor(/^@nl2 OK/)).toMatch(/^@nl2 OK WHO \d+$/);
  });

  test("UNKNOWN_COMMAND <word>", async () => {
    const c = await client();
    expect(await c.request("FROB the thing")).toBe("ERR UNKNOWN_COMMAND FROB");
    expect(await c.request("/nick bob")).toBe("ERR UNKNOWN_COMMAND NICK");
  });

  test("NOT_LOGGED_IN for every command that needs a session", async () => {
    const c = await client();
    for (const line of ["WHO", "SEND someone hi", "ALL hi", "INBOX", "READ abc", "DELETE abc", "ACK abc", "LOGOUT", "UNREGISTER secret1"]) {
      expect([line, await c.request(line)]).toEqual([line, expect.stringMatching(/^ERR NOT_LOGGED_IN/)]);
    }
    // and the ones that do not need one
    expect(await c.request("SERVERS")).toMatch(/^OK SERVERS \d+$/);
    expect(await c.request("CAP ACK")).toBe("OK CAP ACK");
    expect(await c.request("LOGIN nobody_x secret1")).toMatch(/^ERR AUTH/);
    expect(await c.request("RESUME nobody_x tok123")).toMatch(/^ERR AUTH/);
    c.send("@lv /@live?");
    expect(await c.waitFor(/^@lv /)).toBe("@lv yes");
  });

  test("BAD_REQUEST for invalid UTF-8, NUL, empty and >8192-byte datagrams", async () => {
    // A plain session: replies beyond 3x what a short bad datagram brings go out on its IP's
    // budget (an address without a session would get none of these long error texts).
    const { c } = await user("frm_a");
    const cases: Array<[string, Buffer]> = [
      ["invalid utf-8", Buffer.from([0x57, 0x48, 0x4f, 0x20, 0xc3])],
      ["0xff", Buffer.from([0x53, 0x45, 0x4e, 0x44, 0x20, 0x62, 0x20, 0xff])],
      ["NUL", Buffer.from("WHO\0")],
      ["NUL in text", Buffer.from("SEND bob a\0b")],
      ["8193 bytes", Buffer.from(`UNREGISTER ${"x".repeat(8193 - 11)}`)],
      ["9000 bytes", Buffer.alloc(9000, 0x41)],
    ];
    for (const [name, buf] of cases) {
      const from = c.lines.length;
      c.send(buf);
      const line = await c.waitFor(() => true, 3000, from);
      expect([name, line]).toEqual([name, expect.stringMatching(/^ERR BAD_REQUEST \S/)]);
    }
    // From an address without a session an empty datagram, or a lone newline, earns no reply:
    // 3x its size is too small for one (an amplifier otherwise).
    const stranger = await client();
    for (const buf of [Buffer.alloc(0), Buffer.from("\n"), Buffer.from("@")]) stranger.send(buf);
    expect(await stranger.settle(500)).toEqual([]);
    // an 8192-byte datagram is still a request (here: an unknown user's login)
    const big = `@big1 LOGIN nobody ${"x".repeat(8192 - "@big1 LOGIN nobody ".length)}`;
    expect(Buffer.byteLength(big)).toBe(8192);
    c.send(big);
    expect(await c.waitFor(/^@big1 /)).toMatch(/^@big1 ERR AUTH /);
    // the tag comes back on a framing error after a valid tag
    c.send("@bad7 SEND bob");
    expect(await c.waitFor(/^@bad7 /)).toMatch(/^@bad7 ERR BAD_REQUEST /);
  });
});

describe("large replies", () => {
  // The tag counts against the 8,192-byte maximum: WHO's ONLINE lines are split with it.
  test("with ~300 users online, every line of a tagged WHO fits in 8,192 bytes", async () => {
    // Users and sessions are written straight into the database: WHO only reads them.
    const names = Array.from({ length: 300 }, (_, i) => `w${String(i).padStart(3, "0")}${"x".repeat(28)}`);
    await sql(fx.db.url, "INSERT INTO users (name, pass_hash, home_cluster) SELECT n, 'x', 'local' FROM unnest($1::text[]) AS n", [names]);
    await sql(
      fx.db.url,
      `INSERT INTO sessions (user_name, token, cluster, gateway, addr, login_at, last_heard)
       SELECT n, 'tok' || n, 'local', 'nowhere', '127.0.0.1:' || (20000 + row_number() OVER ()), now(), now() + interval '1 hour'
         FROM unnest($1::text[]) AS n`,
      [names],
    );
    try {
      const { c } = await user("big_who");
      const tag = "T".repeat(32);
      const from = c.lines.length;
      c.send(`@${tag} WHO`);
      await c.waitFor((l) => l.startsWith(`@${tag} OK WHO`), 5000, from);
      const lines = c.lines.slice(from).filter((l) => l.startsWith(`@${tag} `));
      const listed = lines.filter((l) => l.startsWith(`@${tag} ONLINE`)).flatMap((l) => l.split(" ").slice(2));
      expect(listed).toEqual(expect.arrayContaining(names));
      const tooLong = lines.map((l) => Buffer.byteLength(l)).filter((n) => n > 8192);
      expect(tooLong).toEqual([]);
    } finally {
      await sql(fx.db.url, "DELETE FROM users WHERE name = ANY($1::text[])", [names]);
    }
  });
});
