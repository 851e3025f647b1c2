/**
 * The Telegram bot's decisions, free of I/O: how a message is read (command or free text), who
 * may use which command, and the /start conversation (name, then email). The caller loads the
 * member, calls decide(), stores what it returns and sends the replies; so every replica, and
 * the unit tests, follow exactly the same rules.
 */
import { createHash, timingSafeEqual } from "node:crypto";
import { formatDuration as configDuration, parseDuration } from "../config/duration.ts";

/** What /start still waits for: the name, the email, or nothing (a registered member). */
export type Stage = "name" | "email" | "member";

export interface Member {
  chatId: number;
  stage: Stage;
  name: string | null;
  email: string | null;
  isAdmin: boolean;
  /** Wrong admin codes in a row. */
  adminFailures: number;
  adminLockedUntil: Date | null;
  username: string | null;
}

export type Input = { kind: "command"; name: string; args: string } | { kind: "text"; text: string };

export type ResourceQuery = { kind: "cpu" | "ram" | "system"; target: string | undefined };
/** Silences: who sets one is named on the dashboard (`by`). */
export type SilenceQuery =
  | { kind: "mute"; component: string; durationMs: number; by: string }
  | { kind: "unmute"; component: string; by: string }
  | { kind: "ack"; component: string; by: string };
export type Query = ResourceQuery | SilenceQuery | { kind: "status" } | { kind: "help"; admin: boolean };

export interface Decision {
  /** Sent in this order, before the query's answer. */
  replies: string[];
  /** The member as it must be stored; undefined: unchanged; null: delete the row. */
  member?: Member | null;
  /** Something the caller answers from the monitor's state. */
  query?: Query;
}

export interface DecideContext {
  now: Date;
  adminCode: string;
  /** The sender's @username, kept for the sysadmins' benefit. */
  username?: string | undefined;
}

/** Wrong /admin codes allowed in a row before /admin is refused for ADMIN_LOCK_MS. */
export const ADMIN_MAX_FAILURES = 5;
export const ADMIN_LOCK_MS = 15 * 60_000;

type Access = "anyone" | "member" | "admin";
export const COMMANDS: Record<string, { access: Access; help: string }> = {
  start: { access: "anyone", help: "register (name, then email)" },
  help: { access: "member", help: "this list" },
  status: { access: "member", help: "every component, UP or DOWN, since when" },
  admin: { access: "member", help: "/admin <code>: become an admin" },
  stop: { access: "member", help: "unregister (no more alerts)" },
  cpu: { access: "admin", help: "/cpu [server]: processor, cores, load and CPU use" },
  ram: { access: "admin", help: "/ram [server]: memory use" },
  system: { access: "admin", help: "/system [server]: OS, kernel, uptime, CPU, RAM, disk and services" },
  mute: { access: "admin", help: "/mute <component> <duration>: no alerts about it for a while (30m, 2h, 1d)" },
  unmute: { access: "admin", help: "/unmute <component>: alerts again (ends a mute or an ack)" },
  ack: { access: "admin", help: "/ack <component>: no alerts about it until it recovers" },
};

/** A mute lasts at least a minute and at most 30 days (a longer one is a config change). */
export const MUTE_MIN_MS = 60_000;
export const MUTE_MAX_MS = 30 * 86_400_000;

/** Component ids (`http:web@10.0.0.5:80`) or patterns (`service:web1/*`): printable, no spaces. */
const COMPONENT_ARG = /^[\x21-\x7e]{1,200}$/;

/**
 * The menu Telegram shows (setMyCommands): every command, in /help's words, with the arguments
 * kept (the menu only types the command, so the person needs to know what follows).
 */
export function menuCommands(): Array<{ command: string; description: string }> {
  return Object.entries(COMMANDS).map(([command, c]) => {
    const description = command === "help" ? "the commands you may use" : c.help.startsWith(`/${command} `) ? c.help.slice(command.length + 2) : c.help;
    return { command, description: description.slice(0, 256) };
  });
}

/**
 * `/cmd`, `/cmd args` and `/cmd@bot args` are commands (names are case-insensitive); anything
 * else is text. A command addressed to another bot (`/cmd@other`, in a group) is text, so it is
 * never taken as ours.
 */
export function parseInput(text: string, botUsername?: string): Input {
  const m = /^\/([A-Za-z0-9_]{1,32})(?:@([A-Za-z0-9_]{1,64}))?(?:\s+([\s\S]*))?$/.exec(text.trim());
  if (!m) return { kind: "text", text: text.trim() };
  if (m[2] && botUsername && m[2].toLowerCase() !== botUsername.toLowerCase()) return { kind: "text", text: text.trim() };
  return { kind: "command", name: m[1]!.toLowerCase(), args: (m[3] ?? "").trim() };
}

/** A person's name as typed: trimmed, inner whitespace collapsed; undefined if unusable. */
export function cleanName(text: string): string | undefined {
  const s = text.replace(/\s+/g, " ").trim();
  // Control characters would garble alerts and logs; a name needs at least one letter.
  if (s.length < 1 || s.length > 64 || /[\u0000-\u001f\u007f]/.test(s) || !/\p{L}/u.test(s)) return undefined;
  return s;
}

/** A plausible address (what a person can mistype, not full RFC 5322); lower-cased domain. */
export function cleanEmail(text: string): string | undefined {
  const s = text.trim();
  const m = /^([A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]{1,64})@([A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+)$/.exec(s);
  if (!m || s.length > 254) return undefined;
  const local = m[1]!;
  if (local.startsWith(".") || local.endsWith(".") || local.includes("..")) return undefined;
  const domain = m[2]!.toLowerCase();
  // The top-level domain is letters only (rules out 1.2.3.4 and typos like name@host.c0m).
  if (!/\.[a-z]{2,63}$/.test(domain)) return undefined;
  return `${local}@${domain}`;
}

/** Constant time whatever the lengths: compares digests, never the codes themselves. */
export function codeMatches(given: string, expected: string): boolean {
  const a = createHash("sha256").update(given).digest();
  const b = createHash("sha256").update(expected).digest();
  return timingSafeEqual(a, b);
}

const ASK_NAME = "What is your name?";
const ASK_EMAIL = "What is your email address?";
const NOT_REGISTERED = "Sorry, this bot only answers registered members of the monitoring team. Send /start to register.";

export function newMember(chatId: number, ctx: DecideContext): Member {
  return { chatId, stage: "name", name: null, email: null, isAdmin: false, adminFailures: 0, adminLockedUntil: null, username: ctx.username ?? null };
}

/** What to do with one message from one chat. member: the stored row, if any. */
export function decide(chatId: number, member: Member | undefined, input: Input, ctx: DecideContext): Decision {
  if (input.kind === "command" && input.name === "start") return start(chatId, member, ctx);
  if (!member) return { replies: [NOT_REGISTERED] };
  if (member.stage !== "member") {
    if (input.kind === "command") return { replies: [`Please finish registering first. ${member.stage === "name" ? ASK_NAME : ASK_EMAIL}`] };
    return answer(member, input.text);
  }
  if (input.kind === "text") return { replies: ["I only understand commands. Send /help for the list."] };

  const command = COMMANDS[input.name];
  if (!command) return { replies: [`Unknown command /${input.name}. Send /help for the list.`] };
  if (command.access === "admin" && !member.isAdmin) {
    return { replies: [`Sorry, /${input.name} is for admins only. Ask a sysadmin for the admin code, then send /admin <code>.`] };
  }
  switch (input.name) {
    case "help":
      return { replies: [], query: { kind: "help", admin: member.isAdmin } };
    case "status":
      return { replies: [], query: { kind: "status" } };
    case "cpu":
    case "ram":
    case "system":
      return { replies: [], query: { kind: input.name, target: input.args.split(/\s+/)[0] || undefined } };
    case "mute":
    case "unmute":
    case "ack":
      return silence(input.name, input.args, member);
    case "admin":
      return admin(member, input.args, ctx);
    case "stop":
      return { replies: ["You are unregistered and will get no more alerts. Send /start to register again."], member: null };
    default:
      return { replies: [`Unknown command /${input.name}. Send /help for the list.`] };
  }
}

function start(chatId: number, member: Member | undefined, ctx: DecideContext): Decision {
  if (!member) {
    return {
      replies: ["Welcome to the pesan monitoring bot. Registered members get an alert while anything is down.", ASK_NAME],
      member: newMember(chatId, ctx),
    };
  }
  if (member.stage === "name") return { replies: [ASK_NAME] };
  if (member.stage === "email") return { replies: [ASK_EMAIL] };
  return { replies: [`You are already registered as ${member.name} <${member.email}>${member.isAdmin ? " (admin)" : ""}. Send /help for the commands.`] };
}

function answer(member: Member, text: string): Decision {
  if (member.stage === "name") {
    const name = cleanName(text);
    if (!name) return { replies: [`Please send your name (1 to 64 characters, with letters). ${ASK_NAME}`] };
    return { replies: [`Thanks, ${name}. ${ASK_EMAIL}`], member: { ...member, name, stage: "email" } };
  }
  const email = cleanEmail(text);
  if (!email) return { replies: ["That does not look like an email address (for example name@example.com). Please send it again."] };
  return {
    replies: [`You are registered, ${member.name}. You will get an alert while a component is down. Send /help for the commands.`],
    member: { ...member, email, stage: "member" },
  };
}

function admin(member: Member, code: string, ctx: DecideContext): Decision {
  if (member.isAdmin) return { replies: ["You are already an admin."] };
  if (member.adminLockedUntil && member.adminLockedUntil.getTime() > ctx.now.getTime()) {
    return { replies: ["Too many wrong codes. Try again later."] };
  }
  if (!code) return { replies: ["Send the admin code with the command: /admin <code>"] };
  if (codeMatches(code, ctx.adminCode)) {
    return { replies: ["You are now an admin: /cpu, /ram, /system, /mute, /unmute and /ack are yours."], member: { ...member, isAdmin: true, adminFailures: 0, adminLockedUntil: null } };
  }
  const failures = member.adminFailures + 1;
  const locked = failures >= ADMIN_MAX_FAILURES;
  return {
    replies: [locked ? "Wrong admin code. Too many wrong codes: /admin is blocked for 15 minutes." : "Wrong admin code."],
    member: { ...member, adminFailures: locked ? 0 : failures, adminLockedUntil: locked ? new Date(ctx.now.getTime() + ADMIN_LOCK_MS) : member.adminLockedUntil },
  };
}

/** `/mute <component> <duration>`, `/unmute <component>`, `/ack <component>`: checked here, applied by the caller. */
function silence(name: "mute" | "unmute" | "ack", args: string, member: Member): Decision {
  const parts = args.split(/\s+/).filter(Boolean);
  const usage = name === "mute" ? "/mute <component> <duration>, e.g. /mute host:web1 30m" : `/${name} <component>, e.g. /${name} host:web1`;
  if (parts.length !== (name === "mute" ? 2 : 1)) return { replies: [`Usage: ${usage}. Send /status for the component ids.`] };
  const component = parts[0]!;
  if (!COMPONENT_ARG.test(component)) return { replies: [`That is not a component id. Usage: ${usage}`] };
  const by = member.name ?? (member.username ? `@${member.username}` : String(member.chatId));
  if (name !== "mute") return { replies: [], query: { kind: name, component, by } };
  // A unit is required: a bare "30" would be 30 ms.
  const ms = /[a-z]$/i.test(parts[1]!) ? parseDuration(parts[1]!) : undefined;
  if (ms === undefined) return { replies: [`"${parts[1]!.slice(0, 20)}" is not a duration: give a number and a unit, e.g. 30m, 2h or 1d.`] };
  if (ms < MUTE_MIN_MS || ms > MUTE_MAX_MS) return { replies: [`A mute lasts from ${configDuration(MUTE_MIN_MS)} to ${configDuration(MUTE_MAX_MS)}; ${parts[1]} is outside that.`] };
  return { replies: [], query: { kind: "mute", component, durationMs: ms, by } };
}

/** The /help text for a member (admins also see the admin commands). */
export function helpText(admin: boolean): string {
  const lines = Object.entries(COMMANDS)
    .filter(([name, c]) => name !== "start" && (admin || c.access !== "admin") && !(admin && name === "admin"))
    .map(([name, c]) => (c.help.startsWith("/") ? c.help : `/${name}: ${c.help}`));
  return ["Commands:", ...lines].join("\n");
}
