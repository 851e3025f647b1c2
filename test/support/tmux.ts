/**
 * A real terminal for tests of interactive programs: tmux on a server socket of the test's own
 * (`-L`, a unique name, so nobody else's tmux is touched), no user config, and a fixed size.
 * Panes stay after their program exits (remain-on-exit), so the last screen can still be read.
 *
 *   const tm = await Tmux.start();
 *   const s = await tm.session("node prog.ts", { env: { X: "1" } });
 *   await s.type("hello"); await s.keys("Enter");
 *   await s.waitFor(/hello/);
 *   await tm.stop();
 */
import { execFile, spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";

const run = promisify(execFile);

/** Whether tmux is installed (the tests need it; ./pesan test installs it). */
export function tmuxAvailable(): boolean {
  return spawnSync("tmux", ["-V"], { encoding: "utf8" }).status === 0;
}

/** Quotes a word for sh. */
export function shQuote(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

export interface SessionOptions {
  /** Variables for the program (put before it with env(1)). */
  env?: Record<string, string>;
  /** Unset in the program's environment. */
  unset?: string[];
  width?: number;
  height?: number;
}

export class TmuxSession {
  readonly name: string;
  private readonly tmux: Tmux;

  constructor(tmux: Tmux, name: string) {
    this.tmux = tmux;
    this.name = name;
  }

  /** Types text literally (no key names), as a person would. */
  async type(text: string): Promise<void> {
    await this.tmux.cmd("send-keys", "-t", this.name, "-l", "--", text);
  }

  /** Presses keys by tmux name: Enter, Up, C-c, ... */
  async keys(...keys: string[]): Promise<void> {
    await this.tmux.cmd("send-keys", "-t", this.name, ...keys);
  }

  /** Types a line and presses Enter. */
  async line(text: string): Promise<void> {
    await this.type(text);
    await this.keys("Enter");
  }

  /** The visible screen, wrapped lines joined; with escapes, the SGR codes of colours kept. */
  async screen(o: { escapes?: boolean } = {}): Promise<string> {
    return this.tmux.cmd("capture-pane", "-p", "-J", ...(o.escapes ? ["-e"] : []), "-t", this.name);
  }

  /** The screen's lines, trailing blanks removed. */
  async lines(): Promise<string[]> {
    return (await this.screen()).split("\n").map((l) => l.trimEnd());
  }

  /** Whether the program has exited. */
  async dead(): Promise<boolean> {
    return (await this.tmux.cmd("display-message", "-p", "-t", this.name, "#{pane_dead}")).trim() === "1";
  }

  /**
   * Polls the screen until check passes (a RegExp or string to find, or a predicate); throws
   * with the last screen when it does not within timeoutMs.
   */
  async waitFor(check: RegExp | string | ((screen: string) => boolean), timeoutMs = 20_000, o: { escapes?: boolean } = {}): Promise<string> {
    const ok = typeof check === "function" ? check : typeof check === "string" ? (s: string) => s.includes(check) : (s: string) => check.test(s);
    const deadline = Date.now() + timeoutMs;
    let last = "";
    for (;;) {
      last = await this.screen(o);
      if (ok(last)) return last;
      if (Date.now() > deadline) throw new Error(`tmux ${this.name}: screen never showed ${String(check)} within ${timeoutMs} ms; it shows:\n${last}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  async waitDead(timeoutMs = 20_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!(await this.dead())) {
      if (Date.now() > deadline) throw new Error(`tmux ${this.name}: the program did not exit within ${timeoutMs} ms; screen:\n${await this.screen()}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  async kill(): Promise<void> {
    await this.tmux.cmd("kill-session", "-t", this.name).catch(() => undefined);
  }
}

export class Tmux {
  readonly socket: string;
  private readonly dir: string;
  private readonly conf: string;
  private readonly baseEnv: Record<string, string>;
  private n = 0;

  private constructor(baseEnv: Record<string, string>) {
    this.socket = `pesan-test-${process.pid}-${randomBytes(4).toString("hex")}`;
    this.dir = mkdtempSync(join(tmpdir(), "pesan-tmux-"));
    this.conf = join(this.dir, "tmux.conf");
    writeFileSync(this.conf, ["set -g remain-on-exit on", "set -g history-limit 2000", "set -g status off", 'set -g default-terminal "screen"', ""].join("\n"));
    this.baseEnv = baseEnv;
  }

  /**
   * A tmux of the test's own. Its programs see only baseEnv (plus what each session adds):
   * nothing of jest's environment (FORCE_COLOR, NO_COLOR, ...) leaks into what is tested.
   */
  static async start(baseEnv: Record<string, string> = {}): Promise<Tmux> {
    if (!tmuxAvailable()) throw new Error("tmux is not installed; these tests need it (apt-get install tmux)");
    const t = new Tmux({ PATH: process.env.PATH ?? "/usr/bin:/bin", SHELL: "/bin/sh", LANG: "C.UTF-8", LC_ALL: "C.UTF-8", HOME: tmpdir(), ...baseEnv });
    return t;
  }

  async cmd(...args: string[]): Promise<string> {
    const { stdout } = await run("tmux", ["-L", this.socket, "-f", this.conf, ...args], { env: this.baseEnv, encoding: "utf8", timeout: 10_000 });
    return stdout;
  }

  /** Starts a detached session running command (a sh command line) in a width x height pane. */
  async session(command: string, o: SessionOptions = {}): Promise<TmuxSession> {
    const name = `s${++this.n}`;
    const env = Object.entries(o.env ?? {}).map(([k, v]) => `${k}=${shQuote(v)}`);
    const unset = (o.unset ?? []).flatMap((k) => ["-u", k]);
    const line = env.length > 0 || unset.length > 0 ? `env ${[...unset, ...env].join(" ")} ${command}` : command;
    await this.cmd("new-session", "-d", "-s", name, "-x", String(o.width ?? 200), "-y", String(o.height ?? 40), line);
    return new TmuxSession(this, name);
  }

  /** Kills every session and the server; idempotent. */
  async stop(): Promise<void> {
    await this.cmd("kill-server").catch(() => undefined);
    rmSync(this.dir, { recursive: true, force: true });
  }
}
