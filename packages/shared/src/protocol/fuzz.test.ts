/**
 * Randomized robustness tests of the codec. The seed is random per run (or FUZZ_SEED=<n>);
 * a failure reports the seed, the iteration and the input, so it can be replayed.
 */
import { MAX_DATAGRAM_BYTES, MAX_TEXT_BYTES, byteLength, isValidMessageId, isValidUser, parseDatagram, parseServerLine, parseText, type Parsed, type ServerLine } from "./codec.ts";
import { PROTOCOL_ERRORS } from "../errors.ts";

const SEED = process.env.FUZZ_SEED ? Number(process.env.FUZZ_SEED) >>> 0 : (Math.random() * 2 ** 32) >>> 0;
const ITERATIONS = 20_000;

/**
 * xorshift32: tiny and good enough for test inputs. (Only shifts and xors: Math.imul is not
 * inlined inside jest's vm context and would make the generator the slowest part by far.)
 */
function prng(seed: number): () => number {
  let x = seed >>> 0 || 0x9e3779b9;
  return () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return x >>> 0;
  };
}

const SPECIALS = ["\n", "\r", "\t", "\0", " ", "/", "@", "\x1b", "\x7f", "\u0085", "\u2028", "\ufeff"];

class Gen {
  readonly next: () => number;
  constructor(seed: number) {
    this.next = prng(seed);
  }
  /** 0 <= n < max */
  int(max: number): number {
    return max <= 0 ? 0 : this.next() % max;
  }
  chance(p: number): boolean {
    return this.next() / 2 ** 32 < p;
  }
  pick<T>(xs: readonly T[]): T {
    return xs[this.int(xs.length)]!;
  }
  /** Mostly short, sometimes up to 9000, and often right at the interesting limits. */
  length(): number {
    const r = this.int(10);
    if (r < 5) return this.int(64);
    if (r < 7) return this.int(600);
    if (r < 8) return this.pick([0, 1, 4000, 4001, 4010, 8191, 8192, 8193]) + this.int(3);
    return this.int(9001);
  }
  bytes(n: number): Uint8Array {
    const out = new Uint8Array(n);
    for (let i = 0; i < n; i += 4) {
      const w = this.next();
      out[i] = w & 0xff;
      if (i + 1 < n) out[i + 1] = (w >>> 8) & 0xff;
      if (i + 2 < n) out[i + 2] = (w >>> 16) & 0xff;
      if (i + 3 < n) out[i + 3] = w >>> 24;
    }
    return out;
  }
  /** A random code point: ASCII most often, then controls, BMP, astral, and (as a JS string) lone surrogates. */
  codePoint(allowSurrogates: boolean): string {
    const r = this.int(20);
    if (r < 8) return String.fromCharCode(0x20 + this.int(95));
    if (r < 10) return this.pick(SPECIALS);
    if (r < 13) return String.fromCodePoint(0x80 + this.int(0x800 - 0x80));
    if (r < 16) {
      const cp = 0x800 + this.int(0x10000 - 0x800);
      return cp >= 0xd800 && cp <= 0xdfff && !allowSurrogates ? "\ufffd" : String.fromCharCode(cp);
    }
    if (r < 19) return String.fromCodePoint(0x10000 + this.int(0x110000 - 0x10000));
    return allowSurrogates ? String.fromCharCode(0xd800 + this.int(0x800)) : "😀";
  }
  /** n code points; long texts repeat a random chunk (cheap) with random code points sprinkled in. */
  text(n: number, allowSurrogates = false): string {
    const parts: string[] = [];
    const direct = Math.min(n, 256);
    for (let i = 0; i < direct; i++) parts.push(this.codePoint(allowSurrogates));
    if (n > direct) {
      const chunk = Array.from(parts);
      for (let i = direct; i < n; i++) parts.push(this.int(16) === 0 ? this.codePoint(allowSurrogates) : chunk[i % direct]!);
    }
    return parts.join("");
  }
}

const WORDS = ["REGISTER", "LOGIN", "RESUME", "WHO", "SEND", "ALL", "INBOX", "READ", "DELETE", "ACK", "CAP", "SERVERS", "LOGOUT", "UNREGISTER"];
const KNOWN_CMDS = new Set([...WORDS, "LIVE"]);
const CODES = new Set(Object.keys(PROTOCOL_ERRORS));
const TAG_RE = /^[A-Za-z0-9_-]{1,32}$/;

function validCommand(g: Gen): string {
  const user = () => g.pick(["alice", "bob", "a", "x".repeat(32), "A.b-c_9", "bad!", "é"]);
  const text = () => (g.chance(0.2) ? "y".repeat(g.pick([3999, 4000, 4001])) : g.text(g.int(80)));
  const id = () => g.pick(["1700000000000-0", "m1", "c1:abc.DEF_9-x", "x".repeat(40), "x".repeat(41), "a b"]);
  const lines = [
    () => `REGISTER ${user()} ${g.pick(["secret1", "12345", "p".repeat(128), "p".repeat(129), g.text(g.int(40))])}`,
    () => `LOGIN ${user()} ${g.text(1 + g.int(20))}`,
    () => `RESUME ${user()} ${g.pick(["tok123", "t".repeat(128), "bad token"])}`,
    () => "WHO",
    () => `SEND ${user()} ${text()}`,
    () => `ALL ${text()}`,
    () => "INBOX",
    () => `READ ${id()}`,
    () => `DELETE ${id()}`,
    () => `ACK ${id()}`,
    () => `CAP ${g.pick(["ACK", "ack", "NOPE"])}`,
    () => "SERVERS",
    () => "LOGOUT",
    () => `UNREGISTER ${g.text(1 + g.int(20))}`,
    () => "/@live?",
  ];
  let line = g.pick(lines)();
  if (g.chance(0.3)) line = line.toLowerCase();
  if (g.chance(0.2)) line = `/${line}`;
  if (g.chance(0.3)) line = `@${g.pick(["t1", "x".repeat(32), "x".repeat(33), "bad.tag", ""])} ${line}`;
  if (g.chance(0.3)) line += g.pick(["\n", "\r\n", "\n\n", "\r"]);
  return line;
}

/** Byte-level damage: flips, inserts (NUL, surrogates encoded as UTF-8, truncated sequences), deletes, repeats. */
function mutate(g: Gen, input: Uint8Array): Uint8Array {
  const bytes = Array.from(input);
  const n = 1 + g.int(4);
  for (let k = 0; k < n; k++) {
    const at = g.int(bytes.length + 1);
    switch (g.int(8)) {
      case 0:
        if (bytes.length > 0) bytes[Math.min(at, bytes.length - 1)]! ^= 1 << g.int(8);
        break;
      case 1:
        bytes.splice(at, 0, 0);
        break;
      case 2:
        // a lone surrogate (U+D800..U+DFFF) as the 3 bytes a lax encoder would write
        bytes.splice(at, 0, 0xed, 0xa0 + g.int(0x20), 0x80 + g.int(0x40));
        break;
      case 3:
        bytes.splice(at, 0, g.pick([0xc3, 0xe2, 0xf0, 0x80, 0xff, 0xc0, 0xf5]));
        break;
      case 4:
        bytes.splice(at, 1 + g.int(8));
        break;
      case 5: {
        const from = g.int(bytes.length);
        const seg = bytes.slice(from, from + 1 + g.int(64));
        const times = g.chance(0.1) ? 1 + g.int(300) : 1;
        for (let i = 0; i < times; i++) bytes.splice(at, 0, ...seg);
        break;
      }
      case 6:
        bytes.splice(at, 0, ...Buffer.from(g.text(1 + g.int(6))));
        break;
      default:
        bytes.splice(at, 0, g.pick([0x20, 0x0a, 0x0d, 0x40, 0x2f]));
    }
  }
  return Uint8Array.from(bytes.slice(0, 9000));
}

function input(g: Gen): Uint8Array {
  switch (g.int(6)) {
    case 0:
      return g.bytes(g.length());
    case 1:
      return Buffer.from(g.text(g.length() >> 1));
    case 2:
      return Buffer.from(validCommand(g));
    case 3:
      return mutate(g, Buffer.from(validCommand(g)));
    case 4: {
      // a valid command with long filler, to hit the size limits
      const base = Buffer.from(validCommand(g));
      const fill = Buffer.alloc(Math.max(0, g.length() - base.length), g.pick([0x78, 0x20, 0x0a, 0x00]));
      return Buffer.concat([base, fill]);
    }
    default: {
      const b = Buffer.from(g.text(g.int(200)));
      return g.chance(0.5) ? mutate(g, b) : b;
    }
  }
}

function hex(b: Uint8Array): string {
  const h = Buffer.from(b).toString("hex");
  return h.length > 400 ? `${h.slice(0, 400)}... (${b.length} bytes)` : h;
}

/** Checks every promise the codec makes about a parse result; returns what is wrong, if anything. */
function violations(p: Parsed): string[] {
  const bad: string[] = [];
  if (p.tag !== undefined && !TAG_RE.test(p.tag)) bad.push(`bad tag ${JSON.stringify(p.tag)}`);
  if (!p.ok) {
    if (!CODES.has(p.code)) bad.push(`unknown code ${p.code}`);
    if (typeof p.message !== "string") bad.push("message is not a string");
    else {
      if (!p.message.isWellFormed()) bad.push("message is not well-formed unicode");
      if (/[\p{Cc}]/u.test(p.message)) bad.push(`control character in message ${JSON.stringify(p.message)}`);
      if (byteLength(p.message) > 200) bad.push(`message of ${byteLength(p.message)} bytes`);
    }
    return bad;
  }
  const r = p.req;
  if (!KNOWN_CMDS.has(r.cmd)) bad.push(`unknown cmd ${r.cmd}`);
  switch (r.cmd) {
    case "SEND":
      if (byteLength(r.text) > MAX_TEXT_BYTES) bad.push(`SEND text of ${byteLength(r.text)} bytes`);
      if (r.text.length === 0 || r.to.length === 0 || r.to.includes(" ")) bad.push("SEND without recipient or text");
      break;
    case "ALL":
      if (byteLength(r.text) > MAX_TEXT_BYTES) bad.push(`ALL text of ${byteLength(r.text)} bytes`);
      if (r.text.length === 0) bad.push("ALL without text");
      break;
    case "REGISTER": {
      const n = byteLength(r.password);
      if (!isValidUser(r.user)) bad.push(`REGISTER user ${JSON.stringify(r.user)}`);
      if (n < 6 || n > 128) bad.push(`REGISTER password of ${n} bytes`);
      break;
    }
    case "READ":
    case "DELETE":
    case "ACK":
      if (!isValidMessageId(r.id)) bad.push(`${r.cmd} id ${JSON.stringify(r.id)}`);
      break;
    case "RESUME":
      if (!/^[A-Za-z0-9_-]{1,128}$/.test(r.token)) bad.push("RESUME token");
      break;
  }
  for (const v of Object.values(r)) if (typeof v === "string" && v.includes("\0")) bad.push("NUL in a field");
  return bad;
}

describe(`codec fuzz (seed ${SEED}; replay with FUZZ_SEED=${SEED})`, () => {
  test(`parseDatagram: ${ITERATIONS} random datagrams never throw and always give a known result`, () => {
    const g = new Gen(SEED);
    const decoder = new TextDecoder("utf-8", { fatal: true });
    const stats = { ok: 0, err: 0, send: 0, codes: new Set<string>() };
    for (let i = 0; i < ITERATIONS; i++) {
      const buf = input(g);
      let p: Parsed;
      try {
        p = parseDatagram(buf);
      } catch (e) {
        throw new Error(`seed ${SEED}, iteration ${i}: parseDatagram threw ${String(e)} on ${hex(buf)}`);
      }
      const bad = violations(p);
      // A datagram the decoder accepts must parse exactly like its text.
      if (buf.length > 0 && buf.length <= MAX_DATAGRAM_BYTES) {
        let text: string | undefined;
        try {
          text = decoder.decode(buf);
        } catch {
          if (p.ok || p.code !== "BAD_REQUEST") bad.push("invalid UTF-8 was not refused");
        }
        if (text !== undefined && JSON.stringify(parseText(text)) !== JSON.stringify(p)) bad.push("parseText disagrees");
      } else if (p.ok || p.code !== "BAD_REQUEST") bad.push("empty or oversize datagram was not refused");
      if (bad.length > 0) {
        throw new Error(`seed ${SEED}, iteration ${i}: ${bad.join("; ")}\ninput: ${hex(buf)}\nresult: ${JSON.stringify(p).slice(0, 500)}`);
      }
      if (p.ok) {
        stats.ok++;
        if (p.req.cmd === "SEND") stats.send++;
      } else {
        stats.err++;
        stats.codes.add(p.code);
      }
    }
    // The generator must actually reach both sides of the parser, or the test proves little.
    expect(stats.ok).toBeGreaterThan(ITERATIONS / 20);
    expect(stats.send).toBeGreaterThan(100);
    expect(stats.err).toBeGreaterThan(ITERATIONS / 4);
    expect([...stats.codes].sort()).toEqual(["BAD_PASSWORD", "BAD_REQUEST", "TOO_LONG", "UNKNOWN_COMMAND"]);
  });

  test(`parseText: ${ITERATIONS} random strings (lone surrogates included) never throw`, () => {
    const g = new Gen(SEED ^ 0x9e3779b9);
    for (let i = 0; i < ITERATIONS; i++) {
      const s = g.chance(0.5) ? g.text(g.length() >> 2, true) : validCommand(g) + g.text(g.int(20), true);
      let p: Parsed;
      try {
        p = parseText(s);
      } catch (e) {
        throw new Error(`seed ${SEED}, iteration ${i}: parseText threw ${String(e)} on ${JSON.stringify(s.slice(0, 300))}`);
      }
      const bad = violations(p).filter((v) => v !== "message is not well-formed unicode");
      if (bad.length > 0) throw new Error(`seed ${SEED}, iteration ${i}: ${bad.join("; ")} on ${JSON.stringify(s.slice(0, 300))}`);
    }
  });

  test(`parseServerLine: ${ITERATIONS} random strings never throw and keep raw`, () => {
    const g = new Gen(SEED ^ 0x5bd1e995);
    const heads = ["OK ", "ERR ", "MSG ", "ITEM ", "ONLINE", "SERVER ", "BYE", "REDIRECT ", "yes", "@t1 ", "@", "", "MSG m1 a 2026-01-01T00:00:00.000Z ", "ITEM m1 a 2026-01-01T00:00:00.000Z NEW ", "SERVER s h:1 UP 3/", "SERVER s h:1 DOWN 0/9"];
    const kinds = new Set(["OK", "ERR", "MSG", "ITEM", "ONLINE", "SERVER", "BYE", "REDIRECT", "YES", "OTHER"]);
    const seen = new Set<string>();
    for (let i = 0; i < ITERATIONS; i++) {
      let s = "";
      const parts = g.int(8);
      for (let k = 0; k < parts; k++) s += g.chance(0.5) ? g.pick(heads) : g.chance(0.3) ? " " : g.text(g.int(12), true);
      if (g.chance(0.05)) s += g.text(g.int(9000), true);
      let l: ServerLine;
      try {
        l = parseServerLine(s);
      } catch (e) {
        throw new Error(`seed ${SEED}, iteration ${i}: parseServerLine threw ${String(e)} on ${JSON.stringify(s.slice(0, 300))}`);
      }
      const problems: string[] = [];
      if (!kinds.has(l.kind)) problems.push(`kind ${l.kind}`);
      if (l.raw !== s) problems.push("raw differs from the input");
      if (l.tag !== undefined && !(TAG_RE.test(l.tag) && s.startsWith(`@${l.tag} `))) problems.push(`tag ${l.tag}`);
      if (l.kind === "SERVER" && !(Number.isFinite(l.online) && Number.isFinite(l.quota))) problems.push("SERVER numbers");
      if (l.kind === "ONLINE" && l.users.some((u) => u.length === 0 || u.includes(" "))) problems.push("ONLINE users");
      if (problems.length > 0) throw new Error(`seed ${SEED}, iteration ${i}: ${problems.join("; ")} on ${JSON.stringify(s.slice(0, 300))}`);
      seen.add(l.kind);
    }
    expect([...seen].sort()).toEqual([...kinds].sort());
  });
});
