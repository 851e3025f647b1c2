/**
 * A real OpenSSH server for tests: Debian's /usr/sbin/sshd on a free loopback port, with a
 * throwaway ed25519 host key and client key in a temp dir. stop() kills the listener and every
 * per-connection process it forked (they outlive the listener otherwise, and an established
 * session would keep working), so "stopped" looks to a client like a host that went away.
 */
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { connect } from "node:net";
import { tmpdir, userInfo } from "node:os";
import { join } from "node:path";

export const SSHD = "/usr/sbin/sshd";

export class TestSshd {
  readonly dir: string;
  readonly port: number;
  readonly user = userInfo().username;
  readonly clientKeyFile: string;
  /** `[127.0.0.1]:PORT ssh-ed25519 AAAA...`, as ssh writes it to known_hosts. */
  readonly knownHostsLine: string;
  /** `SHA256:...`, as `ssh-keygen -lf` prints it. */
  readonly fingerprint: string;
  readonly logFile: string;
  private readonly configFile: string;
  private proc: ChildProcess | undefined;

  private constructor(dir: string, port: number) {
    this.dir = dir;
    this.port = port;
    this.clientKeyFile = join(dir, "client_ed25519");
    this.configFile = join(dir, "sshd_config");
    this.logFile = join(dir, "sshd.log");
    const hostKey = join(dir, "host_ed25519");
    keygen(hostKey);
    keygen(this.clientKeyFile);
    writeFileSync(join(dir, "authorized_keys"), readFileSync(`${this.clientKeyFile}.pub`));
    const [type, blob] = readFileSync(`${hostKey}.pub`, "utf8").trim().split(/\s+/);
    this.knownHostsLine = `[127.0.0.1]:${port} ${type} ${blob}`;
    this.fingerprint = `SHA256:${createHash("sha256").update(Buffer.from(blob!, "base64")).digest("base64").replace(/=+$/, "")}`;
    writeFileSync(
      this.configFile,
      [
        `Port ${port}`,
        "ListenAddress 127.0.0.1",
        `HostKey ${hostKey}`,
        `AuthorizedKeysFile ${join(dir, "authorized_keys")}`,
        `PidFile ${join(dir, "sshd.pid")}`,
        "PermitRootLogin prohibit-password",
        "PasswordAuthentication no",
        "KbdInteractiveAuthentication no",
        "UsePAM no",
        // Files under /tmp would fail the ownership/mode checks.
        "StrictModes no",
        "LogLevel VERBOSE",
        // bash run by sshd sources ~/.bashrc; the test user's own rc files (pyenv, ...) must
        // neither slow nor break the commands under test.
        `SetEnv HOME=${dir}`,
        "MaxSessions 20",
        "",
      ].join("\n"),
    );
  }

  /** How a monitor config's SSH target reaches this server (spread into a `targets[]` entry). */
  target(): { host: string; port: number; username: string; privateKeyFile: string; hostKey: string } {
    return { host: "127.0.0.1", port: this.port, username: this.user, privateKeyFile: this.clientKeyFile, hostKey: this.knownHostsLine };
  }

  static async create(port: number): Promise<TestSshd> {
    // sshd refuses to start without its privilege-separation directory.
    mkdirSync("/run/sshd", { recursive: true });
    return new TestSshd(mkdtempSync(join(tmpdir(), "pesan-sshd-")), port);
  }

  get running(): boolean {
    return this.proc !== undefined && this.proc.exitCode === null && this.proc.signalCode === null;
  }

  /** Starts sshd in the foreground (-D) and waits until it sends its banner. */
  async start(timeoutMs = 10_000): Promise<void> {
    if (this.running) return;
    const proc = spawn(SSHD, ["-D", "-f", this.configFile, "-E", this.logFile], { stdio: "ignore" });
    this.proc = proc;
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      if (!this.running) throw new Error(`sshd exited at start-up:\n${this.log()}`);
      if (await banner(this.port)) return;
      await new Promise((r) => setTimeout(r, 50));
    }
    throw new Error(`sshd not answering on ${this.port} after ${timeoutMs} ms:\n${this.log()}`);
  }

  /** Kills the listener and every process below it (open sessions included). */
  async stop(): Promise<void> {
    const proc = this.proc;
    if (!proc || !this.running) return;
    const exited = new Promise<void>((r) => proc.once("exit", () => r()));
    const tree = descendants(proc.pid!);
    proc.kill("SIGKILL");
    for (const pid of tree) {
      try {
        process.kill(pid, "SIGKILL");
      } catch {
        // already gone
      }
    }
    await exited;
    // Wait for the port to stop answering, so a test's "down" starts now.
    for (let i = 0; i < 50 && (await banner(this.port)); i++) await new Promise((r) => setTimeout(r, 20));
  }

  log(): string {
    try {
      return readFileSync(this.logFile, "utf8");
    } catch {
      return "";
    }
  }

  async close(): Promise<void> {
    await this.stop();
    rmSync(this.dir, { recursive: true, force: true });
  }
}

function keygen(file: string): void {
  execFileSync("/usr/bin/ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", "pesan-test", "-f", file], { stdio: "ignore" });
}

/** Every process whose parent chain leads to pid (from /proc; pids only, never names). */
function descendants(pid: number): number[] {
  const parent = new Map<number, number>();
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, "utf8");
      // The command name may hold spaces and parentheses: fields start after the last ")".
      const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      parent.set(Number(entry), Number(fields[1]));
    } catch {
      // exited while we read
    }
  }
  const out: number[] = [];
  const frontier = [pid];
  while (frontier.length > 0) {
    const p = frontier.pop()!;
    for (const [child, pp] of parent) {
      if (pp === p && !out.includes(child)) {
        out.push(child);
        frontier.push(child);
      }
    }
  }
  return out;
}

/** True when something on the port sends an SSH banner within 500 ms. */
function banner(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect({ host: "127.0.0.1", port });
    const done = (ok: boolean) => {
      s.destroy();
      resolve(ok);
    };
    s.setTimeout(500, () => done(false));
    s.once("data", (d) => done(d.toString("latin1").startsWith("SSH-")));
    s.once("error", () => done(false));
    s.once("close", () => done(false));
  });
}
