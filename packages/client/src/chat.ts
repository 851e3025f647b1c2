/**
 * `pnpm chat`: an interactive (or scripted) Pesan chat client on top of PesanClient.
 *
 * stdout: every datagram received, one per line, as received (the client's own tags removed
 * from replies to the user's commands; heartbeat, CAP ACK and RESUME replies the client makes
 * by itself are not shown), with control characters shown as escapes (cli/escape.ts) so no
 * message can forge a line or drive the terminal. stderr: the client's own notices, prefixed
 * with `* `. Colours only on a terminal, and never with NO_COLOR (cli/style.ts).
 */
import { homedir } from "node:os";
import { Writable } from "node:stream";
import readline from "node:readline";
import type tty from "node:tty";
import { setTimeout as delay } from "node:timers/promises";
import { readCommandLine, type CliValues } from "@pesan/shared/cli";
import { PesanClient, PesanError, parseServerAddress } from "./client.ts";
import { carriesSecret, parseCommand } from "./cli/commands.ts";
import { HISTORY_MAX, historyPath, keptLines, loadHistory, saveHistory } from "./cli/history.ts";
import { colourWanted, formatNotice, formatReceived, painter } from "./cli/style.ts";

const USAGE = `usage: pnpm chat [--server host:port[,host:port...]] [--user U [--register]]
                 [--password P] [--heartbeat-ms N] [--no-cap-ack] [--no-history]
                 [--version] [--help]

Chat with a Pesan server over UDP. Each input line is sent as one protocol command
(e.g. "/send bob hi", "WHO", "INBOX", "READ <id>"); every datagram received is
printed on its own line. "/quit" leaves (logging out first).

  --server LIST       servers to use, nearest first; fails over along the list, to
                      which the servers SERVERS lists after login are added
                      (default 127.0.0.1:4999; IPv6 as [::1]:4999; may be repeated)
  --user U            log in as U at start; the password comes from PESAN_PASSWORD,
                      else it is asked for (not echoed) when stdin is a terminal
  --register          register --user first (an existing account is fine)
  --password P        the password on the command line: VISIBLE to every user of
                      this machine (ps, /proc); prefer PESAN_PASSWORD or the prompt
  --heartbeat-ms N    heartbeat period in ms (default 5000; 0 disables failover)
  --no-cap-ack        do not ask for reliable delivery (CAP ACK / ACK <id>)
  --no-history        do not read or write the history file
  --version           print the version
  --help              show this help

Commands the client runs itself:
  /login [USER [PASSWORD]]     log in (USER defaults to --user; no PASSWORD: as above);
                               a server that answers ERR FULL is left for the servers
                               it lists, nearest (measured) first
  /register USER [PASSWORD]    register (asked twice at the prompt)
  /unregister [PASSWORD]       remove the account
  /quit                        log out and leave
Any other line is sent as typed; "@tag ..." is sent exactly as typed.

Output: control characters received are shown escaped, so a message is always one
line and cannot move the cursor: \\n \\r \\t \\e (ESC) \\b \\f \\v \\0, other C0 and DEL as
\\xNN (\\x7f), C1 controls, U+2028/U+2029 and bidi controls as \\uNNNN (\\u0085), and a
backslash as \\\\. Colours only on a terminal and without NO_COLOR.

History (terminal only): $XDG_STATE_HOME/pesan/history (default
~/.local/state/pesan/history), the last ${HISTORY_MAX} lines; a line carrying a password
or token is never written. Client notices go to stderr, prefixed with "* ".`;

const EXIT_WAIT_MS = 5000;
const LINGER_MS = 100;
const LOGOUT_TIMEOUT_MS = 2000;

interface Args {
  servers: string[];
  user: string | undefined;
  password: string | undefined;
  register: boolean;
  heartbeatMs: number;
  capAck: boolean;
  history: boolean;
}

const OPTIONS = {
  server: { type: "string", multiple: true },
  user: { type: "string" },
  password: { type: "string" },
  register: { type: "boolean", default: false },
  "heartbeat-ms": { type: "string" },
  "no-cap-ack": { type: "boolean", default: false },
  "no-history": { type: "boolean", default: false },
} as const;

/** The checked arguments; --help, --version and unknown flags were answered by readCommandLine. */
function parse(values: CliValues): Args {
  const str = (k: string): string | undefined => (typeof values[k] === "string" ? values[k] : undefined);
  const servers = ((values.server as string[] | undefined) ?? ["127.0.0.1:4999"])
    .flatMap((s) => s.split(","))
    .map((s) => s.trim())
    .filter((s) => s.length > 0);
  if (servers.length === 0) throw new Error("--server needs at least one host:port");
  for (const s of servers) parseServerAddress(s);
  let heartbeatMs = 5000;
  if (str("heartbeat-ms") !== undefined) {
    heartbeatMs = Number(str("heartbeat-ms"));
    if (!Number.isInteger(heartbeatMs) || heartbeatMs < 0) throw new Error("--heartbeat-ms must be an integer >= 0");
  }
  if (str("password") !== undefined && str("user") === undefined) throw new Error("--password needs --user");
  if (values.register === true && str("user") === undefined) throw new Error("--register needs --user");
  return {
    servers,
    user: str("user"),
    password: str("password"),
    register: values.register === true,
    heartbeatMs,
    capAck: !values["no-cap-ack"],
    history: !values["no-history"],
  };
}

/**
 * What readline writes goes through here to the terminal; muted, nothing does: how a password
 * is typed without echo while readline keeps the terminal (and its history) for everything else.
 */
class MutableOutput extends Writable {
  muted = false;
  readonly isTTY = true;
  private readonly target: tty.WriteStream;

  constructor(target: tty.WriteStream) {
    super();
    this.target = target;
    target.on("resize", () => this.emit("resize"));
  }

  get columns(): number {
    return this.target.columns;
  }

  get rows(): number {
    return this.target.rows;
  }

  override _write(chunk: Buffer | string, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    if (this.muted) callback();
    else this.target.write(chunk, callback);
  }
}

async function main(): Promise<void> {
  const cl = readCommandLine(process.argv.slice(2), { usage: `${USAGE}\n`, name: "pesan chat", options: OPTIONS });
  if (!cl.run) {
    process.stdout.write(cl.stdout);
    process.stderr.write(cl.stderr);
    if (cl.code !== 0) process.exit(cl.code);
    return;
  }
  let args: Args;
  try {
    args = parse(cl.values);
  } catch (err) {
    process.stderr.write(`* ${err instanceof Error ? err.message : String(err)}\n${USAGE}\n`);
    process.exit(2);
  }

  // The terminal the user types at: prompt, echo and password prompts go there, so stdout
  // may be piped while the user still types at a terminal (the prompt then uses stderr).
  const term: tty.WriteStream | undefined = process.stdin.isTTY ? (process.stdout.isTTY ? process.stdout : process.stderr.isTTY ? process.stderr : undefined) : undefined;
  const interactive = term !== undefined;
  const envPassword = process.env.PESAN_PASSWORD !== undefined && process.env.PESAN_PASSWORD !== "" ? process.env.PESAN_PASSWORD : undefined;
  if (args.user !== undefined && args.password === undefined && envPassword === undefined && !interactive) {
    process.stderr.write(`* --user ${args.user} needs a password: set PESAN_PASSWORD, or run in a terminal to be asked\n${USAGE}\n`);
    process.exit(2);
  }

  const paintOut = painter(colourWanted(process.stdout, process.env));
  const paintErr = painter(colourWanted(process.stderr, process.env));
  let rl: readline.Interface | undefined;
  let rlOpen = false;
  const muter = term ? new MutableOutput(term) : undefined;
  /** The password prompt showing, and who waits for the line typed at it. */
  let secret: { prompt: string; resolve: (line: string | undefined) => void } | undefined;

  /** Writes above the prompt on a terminal, plainly otherwise. */
  const write = (stream: NodeJS.WriteStream, text: string): void => {
    if (rl && rlOpen && term && stream.isTTY) {
      readline.clearLine(term, 0);
      readline.cursorTo(term, 0);
      stream.write(`${text}\n`);
      if (secret) term.write(secret.prompt); // muted: readline would redraw nothing
      else rl.prompt(true);
    } else {
      stream.write(`${text}\n`);
    }
  };
  const out = (raw: string): void => write(process.stdout, formatReceived(raw, paintOut));
  const note = (text: string): void => write(process.stderr, formatNotice(text, paintErr));
  const describe = (err: unknown): string => {
    if (err instanceof PesanError && err.alternatives.length > 0) {
      return `${err.message} (other servers: ${err.alternatives.join(", ")})`;
    }
    return err instanceof Error ? err.message : String(err);
  };

  /** One line typed without echo; undefined when there is no terminal or input ended. */
  const askSecret = (prompt: string): Promise<string | undefined> => {
    if (!rl || !rlOpen || !term || !muter) return Promise.resolve(undefined);
    return new Promise((resolve) => {
      secret = { prompt, resolve };
      readline.clearLine(term, 0);
      readline.cursorTo(term, 0);
      term.write(prompt);
      muter.muted = true;
    });
  };
  const endSecret = (line: string | undefined): void => {
    const s = secret;
    if (!s) return;
    secret = undefined;
    if (muter) muter.muted = false;
    term?.write("\r\n");
    s.resolve(line);
  };
  /** A password the command line did not give: PESAN_PASSWORD, else the prompt. */
  const passwordFor = async (user: string, confirm: boolean): Promise<string | undefined> => {
    if (envPassword !== undefined) return envPassword;
    if (!interactive) {
      note(`no password for ${user}: set PESAN_PASSWORD, or run in a terminal to be asked`);
      return undefined;
    }
    const pw = await askSecret(`password for ${user}: `);
    if (pw === undefined || !confirm) return pw;
    const again = await askSecret(`password for ${user} again: `);
    if (again === pw) return pw;
    note("the passwords differ; nothing sent");
    return undefined;
  };

  const client = new PesanClient({ servers: args.servers, heartbeatMs: args.heartbeatMs, capAck: args.capAck, learnServers: true });
  client.on("line", (line, meta) => {
    if (meta.internal) return;
    out(meta.own && line.tag !== undefined ? line.raw.slice(line.tag.length + 2) : line.raw);
  });
  client.on("push", (line) => {
    if (line.kind === "BYE") note(`session ended by the server: ${line.reason}`);
  });
  client.on("full", (e) => {
    const trying = e.trying.map((t) => `${t.address} (${(t.rttMs ?? 0).toFixed(1)} ms)`).join(", ");
    const silent = e.unreachable.length > 0 ? `; not answering: ${e.unreachable.join(", ")}` : "";
    note(`${e.server} is full; ${trying.length > 0 ? `trying nearest first: ${trying}` : "none of the servers it lists answers"}${silent}`);
  });
  client.on("failover", (e) => {
    const why = e.reason === "heartbeat" ? "no heartbeat reply" : e.reason === "redirect" ? "redirected" : "full";
    note(`${e.reason === "full" ? "moving" : "failover"} from ${e.from} to ${e.to} (${why})`);
  });
  client.on("resumed", (e) => note(`resumed as ${e.user} on ${e.server}`));
  client.on("error", (err) => note(`error: ${describe(err)}`));

  // Commands run one after another (a reply or a timeout before the next line is sent), so a
  // script like "LOGIN ...\nSEND ..." never races its own LOGIN.
  let chain: Promise<void> = Promise.resolve();
  let queued = 0;
  let lastProgress = Date.now();
  const enqueue = (step: () => Promise<void>): void => {
    queued += 1;
    chain = chain
      .then(step)
      .catch((err: unknown) => note(describe(err)))
      .finally(() => {
        queued -= 1;
        lastProgress = Date.now();
      });
  };
  /** Waits for queued commands while they make progress (gives up after EXIT_WAIT_MS without). */
  const drain = async (): Promise<void> => {
    lastProgress = Date.now();
    while (queued > 0 && Date.now() - lastProgress < EXIT_WAIT_MS) {
      await Promise.race([chain, delay(100, undefined, { ref: false })]);
    }
  };

  const login = async (user: string, password: string): Promise<void> => {
    try {
      const s = await client.login(user, password);
      note(`logged in as ${s.user} on ${client.currentServer}`);
    } catch (err) {
      note(`login: ${describe(err)}${err instanceof PesanError && err.code === "FULL" ? `; still on ${client.currentServer}` : ""}`);
    }
  };
  const register = async (user: string, password: string, takenIsFine: boolean): Promise<void> => {
    try {
      await client.register(user, password);
      note(`registered ${user}`);
    } catch (err) {
      if (!(takenIsFine && err instanceof PesanError && err.code === "TAKEN")) note(`register: ${describe(err)}`);
    }
  };

  let exiting = false;
  const finish = async (code: number, logout: boolean): Promise<void> => {
    if (exiting) return;
    exiting = true;
    if (rlOpen && interactive) term?.write("\n");
    rlOpen = false;
    endSecret(undefined);
    rl?.close();
    if (logout && client.session) {
      try {
        await client.logout({ timeoutMs: LOGOUT_TIMEOUT_MS });
      } catch (err) {
        note(`logout: ${describe(err)}`);
      }
    }
    await client.close();
    process.exit(code);
  };
  const onSignal = (): void => {
    void finish(0, true).catch(() => process.exit(1));
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);

  // History only for a person at a terminal, as a shell keeps it; a script's lines are its own.
  const histFile = interactive && args.history ? historyPath(process.env, homedir()) : undefined;
  let history: string[] = [];
  if (histFile) {
    try {
      history = loadHistory(histFile);
    } catch (err) {
      process.stderr.write(formatNotice(`history ${histFile}: ${describe(err)}`, paintErr) + "\n");
    }
  }
  let historyFailed = false;

  rl = readline.createInterface({
    input: process.stdin,
    ...(muter ? { output: muter, prompt: "> ", history: [...history].reverse(), historySize: HISTORY_MAX } : {}),
    terminal: interactive,
    crlfDelay: Infinity,
  });
  rlOpen = true;
  // readline calls this after adding a line and before handing it out; what is taken out of
  // the array here is gone from memory too: a password typed at the prompt, a typed LOGIN.
  rl.on("history", (h: string[]) => {
    const typedSecret = secret ? rl?.line : undefined;
    for (let i = h.length - 1; i >= 0; i--) if (h[i] === typedSecret || carriesSecret(h[i]!)) h.splice(i, 1);
    if (!histFile || historyFailed) return;
    try {
      saveHistory(histFile, keptLines([...h].reverse()));
    } catch (err) {
      historyFailed = true;
      note(`history ${histFile} not saved: ${describe(err)}`);
    }
  });
  rl.on("SIGINT", onSignal);
  rl.on("line", (line) => {
    if (secret) {
      endSecret(line.replace(/\r$/, ""));
      return;
    }
    const cmd = parseCommand(line);
    switch (cmd.kind) {
      case "quit":
        void finish(0, true).catch(() => process.exit(1));
        return;
      case "empty":
        break;
      case "tagged":
        // The user tagged it: sent as is (in turn), their tag comes back on the reply.
        enqueue(async () => client.sendRaw(cmd.line));
        break;
      case "login":
      case "register": {
        const user = cmd.user ?? args.user;
        if (user === undefined) {
          note(`usage: /${cmd.kind} USER [PASSWORD]`);
          break;
        }
        enqueue(async () => {
          const password = cmd.password ?? (await passwordFor(user, cmd.kind === "register"));
          if (password === undefined) return;
          if (cmd.kind === "login") await login(user, password);
          else await register(user, password, false);
        });
        break;
      }
      case "unregister":
        enqueue(async () => {
          const password = cmd.password ?? (await passwordFor(client.session?.user ?? "this account", false));
          if (password !== undefined) await client.request(`UNREGISTER ${password}`);
        });
        break;
      case "raw":
        enqueue(async () => {
          await client.request(cmd.line);
        });
        break;
    }
    if (interactive && rlOpen && !secret) rl?.prompt();
  });
  rl.on("close", () => {
    rlOpen = false;
    endSecret(undefined);
    if (exiting) return;
    void (async () => {
      await drain();
      await delay(LINGER_MS, undefined, { ref: false }); // pushes that follow the last reply
      await finish(0, false);
    })().catch(() => process.exit(1));
  });

  await client.start();
  note(`connected to ${client.currentServer} from UDP port ${client.localPort ?? "?"}${args.servers.length > 1 ? ` (failover: ${client.servers.join(", ")})` : ""}`);
  if (args.password !== undefined) note("--password is visible to other users of this machine (ps); prefer PESAN_PASSWORD or the prompt");

  if (args.user !== undefined) {
    const user = args.user;
    const given = args.password;
    const wantRegister = args.register;
    enqueue(async (): Promise<void> => {
      const password = given ?? (await passwordFor(user, false));
      if (password === undefined) return;
      if (wantRegister) await register(user, password, true);
      await login(user, password);
    });
  }
  if (interactive && !secret && !exiting) rl.prompt();
}

main().catch((err: unknown) => {
  process.stderr.write(`* ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
