/**
 * What a line typed into the chat CLI means. Everything is a protocol command sent as typed,
 * except the ones the CLI runs itself: LOGIN and REGISTER (through the library, so an
 * `ERR FULL` is followed and a missing password is asked for), UNREGISTER without its
 * password, and /quit. Pure: no I/O.
 */

export type Command =
  | { kind: "empty" }
  | { kind: "quit" }
  /** The user chose the tag: sent exactly as typed, its reply keeps the tag. */
  | { kind: "tagged"; line: string }
  /** LOGIN / REGISTER; user undefined: the one of --user; password undefined: ask for it. */
  | { kind: "login" | "register"; user: string | undefined; password: string | undefined }
  | { kind: "unregister"; password: string | undefined }
  | { kind: "raw"; line: string };

const TAGGED = /^@[A-Za-z0-9_-]{1,32} /;

/** The command word (upper case, leading `/` dropped) and what follows the first space. */
function split(line: string): { word: string; rest: string | undefined } {
  const s = line.replace(/^\s+/, "");
  const sp = s.indexOf(" ");
  const word = (sp < 0 ? s : s.slice(0, sp)).replace(/^\//, "").toUpperCase();
  return { word, rest: sp < 0 ? undefined : s.slice(sp + 1) };
}

export function parseCommand(input: string): Command {
  const line = input.replace(/\r$/, "");
  if (line.trim().length === 0) return { kind: "empty" };
  if (TAGGED.test(line)) return { kind: "tagged", line };
  const { word, rest } = split(line);
  if (word === "QUIT" || word === "EXIT") return { kind: "quit" };
  if (word === "LOGIN" || word === "REGISTER") {
    const kind = word === "LOGIN" ? "login" : "register";
    if (rest === undefined || rest.trim() === "") return { kind, user: undefined, password: undefined };
    // The password is the rest of the line, spaces included, as the protocol reads it.
    const r = rest.replace(/^ +/, "");
    const sp = r.indexOf(" ");
    if (sp < 0) return { kind, user: r, password: undefined };
    const password = r.slice(sp + 1);
    return { kind, user: r.slice(0, sp), password: password.length > 0 ? password : undefined };
  }
  if (word === "UNREGISTER") return { kind: "unregister", password: rest !== undefined && rest.length > 0 ? rest : undefined };
  return { kind: "raw", line };
}

/**
 * Whether a typed line carries a password or a session token, so it must never reach the
 * history file: LOGIN/REGISTER with a password, UNREGISTER with one, RESUME with a token, in
 * any case, with or without `/`, tagged or not, and a signed datagram (`~seq.mac ...`) typed
 * by hand.
 */
export function carriesSecret(input: string): boolean {
  let line = input.replace(/^\s+/, "");
  if (line.startsWith("~")) return true;
  const tagged = /^@[^ ]* +/.exec(line);
  if (tagged) line = line.slice(tagged[0].length);
  const { word, rest } = split(line);
  const args = (rest ?? "").split(" ").filter((a) => a.length > 0);
  switch (word) {
    case "LOGIN":
    case "REGISTER":
    case "RESUME":
      return args.length >= 2;
    case "UNREGISTER":
      return args.length >= 1;
    default:
      return false;
  }
}
