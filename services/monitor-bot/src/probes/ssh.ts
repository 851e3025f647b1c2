/**
 * One SSH connection per target, reused by every probe of that target (a connection costs a
 * handshake and a log line on the server; a channel costs almost nothing). It connects on first
 * use, reconnects on the next use after a drop, and runs at most maxChannels commands at once
 * (sshd's MaxSessions is 10 by default).
 */
import ssh2 from "ssh2";
import type { Logger } from "@pesan/shared/observability";
import { fingerprintOf, hostKeyAlgorithms, hostKeyMatches, type HostKeyPin } from "./hostkey.ts";
import { Semaphore, TimeoutError } from "./schedule.ts";

export interface SshTarget {
  name: string;
  host: string;
  port: number;
  username: string;
  privateKey: Buffer;
  passphrase: string | undefined;
  hostKeys: HostKeyPin[];
  timeoutMs: number;
  /** The slowest probe interval: how often an idle connection is checked by keepalives. */
  intervalMs: number;
  maxChannels: number;
}

export interface ExecResult {
  /** Exit code; null when the command died of a signal. */
  code: number | null;
  stdout: string;
  stderr: string;
}

/** What probes need from a connection; tests may inject another. */
export interface SshSession {
  exec(command: string, timeoutMs: number): Promise<ExecResult>;
  close(): Promise<void>;
}

export type SshConnector = (target: SshTarget, logger: Logger) => SshSession;

/** The host could not be reached or refused us: connection, handshake, host key or auth. */
export class SshConnectError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "SshConnectError";
  }
}

const MAX_OUTPUT = 64 * 1024;

export const connectSsh: SshConnector = (target, logger) => new SshConnection(target, logger);

export class SshConnection implements SshSession {
  private readonly target: SshTarget;
  private readonly logger: Logger;
  private readonly channels: Semaphore;
  private client: ssh2.Client | undefined;
  private connecting: Promise<ssh2.Client> | undefined;
  private handshaking: ssh2.Client | undefined;
  private closed = false;

  constructor(target: SshTarget, logger: Logger) {
    this.target = target;
    this.logger = logger;
    this.channels = new Semaphore(target.maxChannels);
  }

  async exec(command: string, timeoutMs: number): Promise<ExecResult> {
    const client = await this.ready();
    return this.channels.run(() => this.run(client, command, timeoutMs));
  }

  private ready(): Promise<ssh2.Client> {
    if (this.closed) return Promise.reject(new SshConnectError("connection closed"));
    if (this.client) return Promise.resolve(this.client);
    this.connecting ??= this.connect().finally(() => {
      this.connecting = undefined;
    });
    return this.connecting;
  }

  private connect(): Promise<ssh2.Client> {
    const t = this.target;
    const client = new ssh2.Client();
    this.handshaking = client;
    let presented: string | undefined;
    return new Promise<ssh2.Client>((resolve, reject) => {
      let settled = false;
      const fail = (message: string) => {
        if (settled) return;
        settled = true;
        this.handshaking = undefined;
        clearTimeout(guard);
        client.end();
        reject(new SshConnectError(message));
      };
      // ssh2's readyTimeout covers the handshake; this also bounds a TCP connect that hangs.
      const guard = setTimeout(() => fail(`no SSH session within ${t.timeoutMs} ms`), t.timeoutMs + 1000);
      client.on("ready", () => {
        if (settled) return;
        settled = true;
        this.handshaking = undefined;
        clearTimeout(guard);
        if (this.closed) {
          client.end();
          reject(new SshConnectError("connection closed"));
          return;
        }
        this.client = client;
        this.logger.info({ host: t.host, port: t.port }, "ssh connected");
        resolve(client);
      });
      client.on("error", (err: Error & { level?: string }) => {
        if (!settled) {
          const mismatch = presented !== undefined ? `host key mismatch: ${t.host}:${t.port} presented ${presented}, which the config does not pin` : undefined;
          fail(mismatch ?? `${err.level === "client-authentication" ? "authentication failed" : "cannot connect"}: ${err.message}`);
          return;
        }
        if (!this.closed) this.logger.warn({ err: err.message }, "ssh connection error");
      });
      client.on("close", () => {
        if (!settled) fail("connection closed during handshake");
        if (this.client === client) {
          this.client = undefined;
          if (!this.closed) this.logger.info("ssh connection closed");
        }
      });
      const algorithms = hostKeyAlgorithms(t.hostKeys);
      try {
        client.connect({
          host: t.host,
          port: t.port,
          username: t.username,
          privateKey: t.privateKey,
          ...(t.passphrase !== undefined ? { passphrase: t.passphrase } : {}),
          readyTimeout: t.timeoutMs,
          // Notices a silently dead peer on an idle connection within a few intervals.
          keepaliveInterval: Math.min(Math.max(t.intervalMs, 1000), 15_000),
          keepaliveCountMax: 3,
          hostVerifier: (key: Buffer) => {
            if (hostKeyMatches(key, t.hostKeys)) return true;
            presented = fingerprintOf(key);
            return false;
          },
          ...(algorithms ? { algorithms: { serverHostKey: algorithms as ssh2.ServerHostKeyAlgorithm[] } } : {}),
        });
      } catch (e) {
        fail(`cannot connect: ${(e as Error).message}`);
      }
    });
  }

  private run(client: ssh2.Client, command: string, timeoutMs: number): Promise<ExecResult> {
    return new Promise<ExecResult>((resolve, reject) => {
      let stdout = "";
      let stderr = "";
      let code: number | null | undefined;
      let settled = false;
      const finish = (err: Error | undefined) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        if (err) reject(err);
        else resolve({ code: code ?? null, stdout, stderr });
      };
      const timer = setTimeout(() => {
        finish(new TimeoutError(`command did not finish within ${timeoutMs} ms`));
        // A connection that cannot run a command in time is suspect: start afresh next time.
        if (this.client === client) this.client = undefined;
        client.end();
      }, timeoutMs);
      try {
        client.exec(command, (err, stream) => {
          if (err) return finish(new Error(`cannot open a channel: ${err.message}`));
          if (settled) return void stream.close();
          stream.on("data", (d: Buffer) => {
            if (stdout.length < MAX_OUTPUT) stdout += d.toString("utf8");
          });
          stream.stderr.on("data", (d: Buffer) => {
            if (stderr.length < MAX_OUTPUT) stderr += d.toString("utf8");
          });
          stream.on("exit", (c: number | null) => {
            code = c;
          });
          stream.on("close", () => {
            if (code === undefined) finish(new Error("connection lost while the command ran"));
            else finish(undefined);
          });
        });
      } catch (e) {
        finish(new Error(`cannot run the command: ${(e as Error).message}`));
      }
    });
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const pending = this.connecting;
    this.handshaking?.end();
    this.client?.end();
    this.client = undefined;
    await pending?.catch(() => undefined);
  }
}
