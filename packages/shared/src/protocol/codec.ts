/**
 * The client protocol codec (docs/protocol.md): pure functions from bytes to a typed request
 * and from typed replies to text. Nothing here throws on input; a malformed datagram becomes
 * an error value the caller turns into an `ERR` reply.
 */
import { PROTOCOL_ERRORS, type ProtocolErrorCode } from "../errors.ts";
import { isUserName, USER_NAME_RULE } from "../names.ts";

export const MAX_DATAGRAM_BYTES = 8192;
export const MAX_TEXT_BYTES = 4000;
export const INBOX_PREVIEW_CHARS = 60;
export const HEARTBEAT = "/@live?";
export const HEARTBEAT_REPLY = "yes";

const TAG_RE = /^@([A-Za-z0-9_-]{1,32}) /;
const ID_RE = /^[A-Za-z0-9_.:-]{1,40}$/;
const TOKEN_RE = /^[A-Za-z0-9_-]{1,128}$/;

export type Request =
  | { cmd: "REGISTER"; user: string; password: string }
  | { cmd: "LOGIN"; user: string; password: string }
  | { cmd: "RESUME"; user: string; token: string }
  | { cmd: "WHO" }
  | { cmd: "SEND"; to: string; text: string }
  | { cmd: "ALL"; text: string }
  | { cmd: "INBOX" }
  | { cmd: "READ"; id: string }
  | { cmd: "DELETE"; id: string }
  | { cmd: "ACK"; id: string }
  | { cmd: "CAP"; cap: "ACK" }
  | { cmd: "SERVERS" }
  | { cmd: "LOGOUT" }
  | { cmd: "PING" }
  | { cmd: "UNREGISTER"; password: string }
  | { cmd: "LIVE" };

export type Command = Request["cmd"];

export type Parsed =
  | { ok: true; tag: string | undefined; req: Request }
  | { ok: false; tag: string | undefined; code: ProtocolErrorCode; message: string };

const utf8 = new TextDecoder("utf-8", { fatal: true });
const encoder = new TextEncoder();

export function byteLength(s: string): number {
  return Buffer.byteLength(s, "utf8");
}

export function isValidUser(name: string): boolean {
  return isUserName(name);
}

export function isValidMessageId(id: string): boolean {
  return ID_RE.test(id);
}

/** Decodes and parses one datagram. Never throws. */
export function parseDatagram(buf: Uint8Array): Parsed {
  if (buf.length === 0) return bad(undefined, "empty datagram");
  if (buf.length > MAX_DATAGRAM_BYTES) return bad(undefined, `datagram longer than ${MAX_DATAGRAM_BYTES} bytes`);
  let text: string;
  try {
    text = utf8.decode(buf);
  } catch {
    return bad(undefined, "datagram is not valid UTF-8");
  }
  return parseText(text);
}

/** The framing rule, both ways: one trailing `\n` or `\r\n` is not content. */
export function unframe(raw: string): string {
  if (raw.endsWith("\r\n")) return raw.slice(0, -2);
  if (raw.endsWith("\n")) return raw.slice(0, -1);
  return raw;
}

/** A reply or push as sent: with one `\n`, so `nc -u` shows one per line (clients strip it). */
export function frame(line: string): string {
  return `${line}\n`;
}

/** Parses an already decoded datagram (framing rules included). Never throws. */
export function parseText(raw: string): Parsed {
  let text = unframe(raw);
  if (text.includes("\0")) return bad(undefined, "NUL byte in datagram");
  if (byteLength(text) > MAX_DATAGRAM_BYTES) return bad(undefined, `datagram longer than ${MAX_DATAGRAM_BYTES} bytes`);

  let tag: string | undefined;
  const m = TAG_RE.exec(text);
  if (m) {
    tag = m[1];
    text = text.slice(m[0].length);
  } else if (text.startsWith("@") && !isHeartbeat(text)) {
    return bad(undefined, "a tag is @ followed by 1-32 of A-Z a-z 0-9 _ - and a space");
  }
  if (text.length === 0) return bad(tag, "empty request");
  if (isHeartbeat(text)) return { ok: true, tag, req: { cmd: "LIVE" } };

  const sp = text.indexOf(" ");
  let word = (sp < 0 ? text : text.slice(0, sp)).toUpperCase();
  if (word.startsWith("/")) word = word.slice(1);
  const rest = sp < 0 ? "" : text.slice(sp + 1);
  return parseCommand(tag, word, rest);
}

function isHeartbeat(text: string): boolean {
  return text === HEARTBEAT || text === "@live?";
}

function parseCommand(tag: string | undefined, word: string, rest: string): Parsed {
  const ok = (req: Request): Parsed => ({ ok: true, tag, req });
  switch (word) {
    case "REGISTER": {
      const a = userAndRest(rest);
      if (!a) return bad(tag, "usage: REGISTER <user> <password>");
      if (!isValidUser(a.user)) return bad(tag, `user name must be ${USER_NAME_RULE}`);
      const n = byteLength(a.rest);
      if (n < 6 || n > 128) return fail(tag, "BAD_PASSWORD", PROTOCOL_ERRORS.BAD_PASSWORD);
      return ok({ cmd: "REGISTER", user: a.user, password: a.rest });
    }
    case "LOGIN": {
      const a = userAndRest(rest);
      if (!a) return bad(tag, "usage: LOGIN <user> <password>");
      return ok({ cmd: "LOGIN", user: a.user, password: a.rest });
    }
    case "RESUME": {
      const a = userAndRest(rest);
      if (!a || !TOKEN_RE.test(a.rest)) return bad(tag, "usage: RESUME <user> <token>");
      return ok({ cmd: "RESUME", user: a.user, token: a.rest });
    }
    case "SEND": {
      const a = userAndRest(rest);
      if (!a) return bad(tag, "usage: SEND <user> <text>");
      if (byteLength(a.rest) > MAX_TEXT_BYTES) return fail(tag, "TOO_LONG", PROTOCOL_ERRORS.TOO_LONG);
      return ok({ cmd: "SEND", to: a.user, text: a.rest });
    }
    case "ALL": {
      if (rest.length === 0) return bad(tag, "usage: ALL <text>");
      if (byteLength(rest) > MAX_TEXT_BYTES) return fail(tag, "TOO_LONG", PROTOCOL_ERRORS.TOO_LONG);
      return ok({ cmd: "ALL", text: rest });
    }
    case "READ":
    case "DELETE":
    case "ACK": {
      if (!isValidMessageId(rest)) return bad(tag, `usage: ${word} <message id>`);
      return ok({ cmd: word, id: rest });
    }
    case "CAP": {
      if (rest.toUpperCase() !== "ACK") return bad(tag, "usage: CAP ACK (the only capability)");
      return ok({ cmd: "CAP", cap: "ACK" });
    }
    case "UNREGISTER": {
      if (rest.length === 0) return bad(tag, "usage: UNREGISTER <password>");
      return ok({ cmd: "UNREGISTER", password: rest });
    }
    case "WHO":
    case "INBOX":
    case "SERVERS":
    case "LOGOUT":
    case "PING": {
      if (rest.length > 0) return bad(tag, `usage: ${word} (no arguments)`);
      return ok({ cmd: word });
    }
    default:
      return fail(tag, "UNKNOWN_COMMAND", printable(word));
  }
}

/** `<user> <rest>` where rest is non-empty and kept verbatim (spaces and newlines included). */
function userAndRest(s: string): { user: string; rest: string } | undefined {
  const sp = s.indexOf(" ");
  if (sp <= 0) return undefined;
  const rest = s.slice(sp + 1);
  if (rest.length === 0) return undefined;
  return { user: s.slice(0, sp), rest };
}

/** Echoing a client's unknown word back must not smuggle control characters or a huge line. */
function printable(word: string): string {
  // Cut by code points: slicing UTF-16 units could leave half a surrogate pair (not UTF-8).
  const clean = Array.from(word.replace(/[\p{Cc}\s]/gu, "?"));
  return clean.length > 32 ? `${clean.slice(0, 32).join("")}...` : clean.join("");
}

function bad(tag: string | undefined, message: string): Parsed {
  return fail(tag, "BAD_REQUEST", message);
}

function fail(tag: string | undefined, code: ProtocolErrorCode, message: string): Parsed {
  return { ok: false, tag, code, message };
}

// ---------------------------------------------------------------------------------------------
// Formatting (server -> client)

export function withTag(tag: string | undefined, line: string): string {
  return tag === undefined ? line : `@${tag} ${line}`;
}

export function formatOk(word: string, ...args: Array<string | number>): string {
  return args.length === 0 ? `OK ${word}` : `OK ${word} ${args.join(" ")}`;
}

export function formatErr(code: ProtocolErrorCode, text: string = PROTOCOL_ERRORS[code]): string {
  return `ERR ${code} ${text}`;
}

export function formatTime(d: Date): string {
  return d.toISOString();
}

export function formatMsg(id: string, from: string, time: Date, text: string): string {
  return `MSG ${id} ${from} ${formatTime(time)} ${text}`;
}

export function formatItem(id: string, from: string, time: Date, read: boolean, text: string): string {
  return `ITEM ${id} ${from} ${formatTime(time)} ${read ? "READ" : "NEW"} ${preview(text)}`;
}

/** The first 60 characters (code points) on one line: newlines would break the one-line ITEM. */
export function preview(text: string): string {
  return Array.from(text).slice(0, INBOX_PREVIEW_CHARS).join("").replace(/[\r\n]/g, " ");
}

export function formatServer(name: string, address: string, up: boolean, online: number, quota: number): string {
  return `SERVER ${name} ${address} ${up ? "UP" : "DOWN"} ${online}/${quota}`;
}

/**
 * `ONLINE u1 u2 ...` split over as many datagrams as needed so none exceeds the maximum
 * (a tag, if any, is counted). Always at least one line, even for an empty list.
 */
export function formatOnline(users: readonly string[], tag?: string): string[] {
  const budget = MAX_DATAGRAM_BYTES - (tag === undefined ? 0 : tag.length + 2);
  const lines: string[] = [];
  let cur = "ONLINE";
  for (const u of users) {
    if (cur.length + 1 + u.length > budget) {
      lines.push(cur);
      cur = "ONLINE";
    }
    cur += ` ${u}`;
  }
  lines.push(cur);
  return lines.map((l) => withTag(tag, l));
}

// ---------------------------------------------------------------------------------------------
// Parsing replies and pushes (client side: CLI client, tests, probes)

export type ServerLine =
  | { kind: "OK"; tag: string | undefined; word: string; args: string[]; raw: string }
  | { kind: "ERR"; tag: string | undefined; code: string; text: string; raw: string }
  | { kind: "MSG"; tag: string | undefined; id: string; from: string; time: string; text: string; raw: string }
  | { kind: "ITEM"; tag: string | undefined; id: string; from: string; time: string; state: string; preview: string; raw: string }
  | { kind: "ONLINE"; tag: string | undefined; users: string[]; raw: string }
  | { kind: "SERVER"; tag: string | undefined; name: string; address: string; up: boolean; online: number; quota: number; raw: string }
  | { kind: "BYE"; tag: string | undefined; reason: string; raw: string }
  | { kind: "REDIRECT"; tag: string | undefined; address: string; raw: string }
  | { kind: "YES"; tag: string | undefined; raw: string }
  | { kind: "OTHER"; tag: string | undefined; raw: string };

/** Parses one datagram from a server. Never throws; what it does not know is `OTHER`. */
export function parseServerLine(raw: string): ServerLine {
  let text = raw;
  let tag: string | undefined;
  const m = TAG_RE.exec(text);
  if (m) {
    tag = m[1];
    text = text.slice(m[0].length);
  }
  const parts = (n: number): string[] | undefined => {
    const out: string[] = [];
    let s = text;
    for (let i = 0; i < n - 1; i++) {
      const sp = s.indexOf(" ");
      if (sp < 0) return undefined;
      out.push(s.slice(0, sp));
      s = s.slice(sp + 1);
    }
    out.push(s);
    return out;
  };
  const word = text.split(" ", 1)[0] ?? "";
  switch (word) {
    case "yes":
      if (text === "yes") return { kind: "YES", tag, raw };
      break;
    case "OK": {
      const p = text.split(" ");
      if (p.length >= 2) return { kind: "OK", tag, word: p[1] ?? "", args: p.slice(2), raw };
      break;
    }
    case "ERR": {
      const p = parts(3) ?? [...(parts(2) ?? []), ""];
      if (p.length >= 2) return { kind: "ERR", tag, code: p[1] ?? "", text: p[2] ?? "", raw };
      break;
    }
    case "MSG": {
      const p = parts(5);
      if (p) return { kind: "MSG", tag, id: p[1]!, from: p[2]!, time: p[3]!, text: p[4]!, raw };
      break;
    }
    case "ITEM": {
      const p = parts(6);
      if (p) return { kind: "ITEM", tag, id: p[1]!, from: p[2]!, time: p[3]!, state: p[4]!, preview: p[5]!, raw };
      break;
    }
    case "ONLINE":
      return { kind: "ONLINE", tag, users: text.split(" ").slice(1).filter((u) => u.length > 0), raw };
    case "SERVER": {
      const p = text.split(" ");
      const [online, quota] = (p[4] ?? "").split("/").map(Number);
      if (p.length === 5 && Number.isFinite(online) && Number.isFinite(quota)) {
        return { kind: "SERVER", tag, name: p[1]!, address: p[2]!, up: p[3] === "UP", online: online!, quota: quota!, raw };
      }
      break;
    }
    case "BYE":
      return { kind: "BYE", tag, reason: text.slice(4), raw };
    case "REDIRECT":
      return { kind: "REDIRECT", tag, address: text.slice(9), raw };
  }
  return { kind: "OTHER", tag, raw };
}

export function encode(line: string): Uint8Array {
  return encoder.encode(line);
}
