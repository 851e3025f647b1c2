/**
 * `pnpm chat`: an interactive (or scripted) Pesan chat client on top of PesanClient.
 *
 * stdout: every datagram received, one per line, exactly as received (the client's own tags
 * removed from replies to the user's commands; heartbeat, CAP ACK and RESUME replies the client
 * makes by itself are not shown). stderr: the client's own notices, prefixed with `* `.
 */
import { parseArgs } from "node:util";
import readline from "node:readline";
import { setTimeout as delay } from "node:timers/promises";
import { PesanClient, PesanError, parseServerAddress } from "./client.ts";

const USAGE = `usage: pnpm chat [--server host:port[,host:port...]] [--user U --password P] [--register]
                 [--heartbeat-ms N] [--no-cap-ack] [--help]

Chat with a Pesan server over UDP. Each input line is sent as one protocol command
(e.g. "LOGIN alice secret1", "/send bob hi", "WHO", "INBOX", "READ <id>"); every datagram
received is printed on its own line. "/quit" leaves (logging out first).

  --server LIST       servers to use, nearest first; fails over along the list, to
                      which the servers SERVERS lists after login are added
                      (default 127.0.0.1:4999; IPv6 as [::1]:4999; may be repeated)
  --user U            log in as U at start (needs --password)
  --password P        password for --user
  --register          register --user first (an existing account is fine)
  --heartbeat-ms N    heartbeat period in ms (default 5000; 0 disables failover)
  --no-cap-ack        do not ask for reliable delivery (CAP ACK / ACK <id>)
  --help              show this help

Client notices go to stderr, prefixed with "* ".`;

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
}

function parse(argv: string[]): Args | "help" {
  const { values } = parseArgs({
    args: argv,
    strict: true,
    allowPositionals: false,
    options: {
      server: { type: "string", multiple: true },
      user: { type: "string" },
      password: { type: "string" },
      register: { type: "boolean", default: false },
      "heartbeat-ms": { type: "string" },
      "no-cap-ack": { type: "boolean", default: false },
      help: { type: "boolean", short: "h", default: false },
    },
  });
  if (values.help) return "help";
  const servers = (values.server ?? ["127.0.0.1:4999"])
    .flatMap((s) => s.split(","))
    .map((s) => s.trim())
    .filter((s) => s.length > 0);
  if (servers.length === 0) throw new Error("--server needs at least one host:port");
  for (const s of servers) parseServerAddress(s);
  let heartbeatMs = 5000;
  if (values["heartbeat-ms"] !== undefined) {
    heartbeatMs = Number(values["heartbeat-ms"]);
    if (!Number.isInteger(heartbeatMs) || heartbeatMs < 0) throw new Error("--heartbeat-ms must be an integer >= 0");
  }
  if ((values.user === undefined) !== (values.password === undefined)) {
    throw new Error("--user and --password go together");
  }
  if (values.register && values.user === undefined) throw new Error("--register needs --user and --password");
  return {
    servers,
    user: values.user,
    password: values.password,
    register: values.register ?? false,
    heartbeatMs,
    capAck: !values["no-cap-ack"],
  };
}

async function main(): Promise<void> {
  let args: Args | "help";
  try {
    args = parse(process.argv.slice(2));
  } catch (err) {
    process.stderr.write(`* ${err instanceof Error ? err.message : String(err)}\n${USAGE}\n`);
    process.exit(2);
  }
  if (args === "help") {
    process.stdout.write(`${USAGE}\n`);
    return;
  }

  const interactive = process.stdin.isTTY === true;
  let rl: readline.Interface | undefined;
  let rlOpen = false;

  /** Writes above the prompt in a TTY, plainly otherwise. */
  const write = (stream: NodeJS.WriteStream, text: string): void => {
    if (rl && rlOpen && interactive && process.stdout.isTTY) {
      readline.clearLine(process.stdout, 0);
      readline.cursorTo(process.stdout, 0);
      stream.write(`${text}\n`);
      rl.prompt(true);
    } else {
      stream.write(`${text}\n`);
    }
  };
  const out = (text: string): void => write(process.stdout, text);
  const note = (text: string): void => write(process.stderr, `* ${text}`);
  const describe = (err: unknown): string => {
    if (err instanceof PesanError && err.alternatives.length > 0) {
      return `${err.message} (other servers: ${err.alternatives.join(", ")})`;
    }
    return err instanceof Error ? err.message : String(err);
  };

  const client = new PesanClient({ servers: args.servers, heartbeatMs: args.heartbeatMs, capAck: args.capAck, learnServers: true });
  client.on("line", (line, meta) => {
    if (meta.internal) return;
    out(meta.own && line.tag !== undefined ? line.raw.slice(line.tag.length + 2) : line.raw);
  });
  client.on("push", (line) => {
    if (line.kind === "BYE") note(`session ended by the server: ${line.reason}`);
  });
  client.on("failover", (e) => note(`failover from ${e.from} to ${e.to} (${e.reason === "heartbeat" ? "no heartbeat reply" : "redirected"})`));
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

  let exiting = false;
  const finish = async (code: number, logout: boolean): Promise<void> => {
    if (exiting) return;
    exiting = true;
    if (rlOpen && interactive) process.stdout.write("\n");
    rlOpen = false;
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

  await client.start();
  note(`connected to ${client.currentServer} from UDP port ${client.localPort ?? "?"}${args.servers.length > 1 ? ` (failover: ${client.servers.join(", ")})` : ""}`);

  if (args.user !== undefined && args.password !== undefined) {
    const { user, password } = args;
    enqueue(async (): Promise<void> => {
      if (args.register) {
        try {
          await client.register(user, password);
          note(`registered ${user}`);
        } catch (err) {
          if (!(err instanceof PesanError && err.code === "TAKEN")) note(`register: ${describe(err)}`);
        }
      }
      try {
        const s = await client.login(user, password);
        note(`logged in as ${s.user}`);
      } catch (err) {
        note(`login: ${describe(err)}`);
      }
    });
  }
  if (exiting) return;

  rl = readline.createInterface({
    input: process.stdin,
    ...(interactive ? { output: process.stdout, prompt: "> " } : {}),
    terminal: interactive,
    crlfDelay: Infinity,
  });
  rlOpen = true;
  rl.on("SIGINT", onSignal);
  rl.on("line", (input) => {
    const line = input.replace(/\r$/, "");
    const word = line.trim().toLowerCase();
    if (word === "/quit" || word === "/exit") {
      void finish(0, true).catch(() => process.exit(1));
      return;
    }
    if (word.length > 0) {
      if (/^@[A-Za-z0-9_-]{1,32} /.test(line)) {
        // The user tagged it: sent as is (in turn), their tag comes back on the reply.
        enqueue(async () => client.sendRaw(line));
      } else {
        enqueue(async () => {
          await client.request(line);
        });
      }
    }
    if (interactive && rlOpen) rl?.prompt();
  });
  rl.on("close", () => {
    rlOpen = false;
    if (exiting) return;
    void (async () => {
      await drain();
      await delay(LINGER_MS, undefined, { ref: false }); // pushes that follow the last reply
      await finish(0, false);
    })().catch(() => process.exit(1));
  });
  if (interactive) rl.prompt();
}

main().catch((err: unknown) => {
  process.stderr.write(`* ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
