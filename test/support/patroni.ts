/**
 * A throwaway highly-available Postgres: one etcd member and two Patroni-managed Postgres nodes
 * (a primary and a streaming replica), on loopback ports from `freePorts`, in a temp directory.
 * The recipe is docs/ha.md's, with timings shrunk so a failover takes seconds: Patroni checks
 * every second (loop_wait 1), and primary_start_timeout 0 makes it fail over to the replica
 * when the primary's Postgres crashes instead of restarting it in place. As root, Patroni (and
 * so Postgres) runs as the `postgres` user, like throwaway.ts's initdb and pg_ctl.
 */
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { chownSync, existsSync, mkdirSync, mkdtempSync, openSync, closeSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePorts } from "@pesan/cluster";
import { queryRows } from "./db.ts";
import { postgresBinDir } from "./throwaway.ts";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export interface PatroniNode {
  readonly name: string;
  readonly pgPort: number;
  readonly apiPort: number;
  readonly dataDir: string;
  readonly logFile: string;
  proc?: ChildProcess;
}

export interface PatroniOptions {
  /** Patroni's synchronous_mode: a COMMIT returns only once the replica has flushed it. */
  synchronous: boolean;
  /** How long start-up (etcd, bootstrap, the replica's base backup) may take. */
  readyTimeoutMs?: number;
}

const asRoot = () => process.getuid?.() === 0;

function postgresIds(): { uid: number; gid: number } {
  return { uid: Number(execFileSync("id", ["-u", "postgres"]).toString().trim()), gid: Number(execFileSync("id", ["-g", "postgres"]).toString().trim()) };
}

/** Polls `probe` until it returns a value (not undefined) or the deadline passes; then throws `what`. */
export async function until<T>(what: string, timeoutMs: number, probe: () => Promise<T | undefined>, everyMs = 200): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await probe();
      if (v !== undefined) return v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms${last ? ` (last error: ${(last as Error).message})` : ""}`);
    await sleep(everyMs);
  }
}

export class PatroniCluster {
  readonly dir: string;
  readonly nodes: PatroniNode[];
  readonly synchronous: boolean;
  private readonly etcdClientPort: number;
  private readonly etcdPeerPort: number;
  private etcd: ChildProcess | undefined;
  private closed = false;
  /**
   * Walsenders stopped by stallReplication and not killed since: a stopped process notices
   * nothing, not even its postmaster's death, so close() must kill them itself or they outlive
   * the test (a test that fails between the stall and the kill).
   */
  private readonly stalled = new Set<number>();

  private constructor(dir: string, nodes: PatroniNode[], etcdPorts: [number, number], synchronous: boolean) {
    this.dir = dir;
    this.nodes = nodes;
    this.etcdClientPort = etcdPorts[0];
    this.etcdPeerPort = etcdPorts[1];
    this.synchronous = synchronous;
  }

  /** Starts etcd and both nodes; resolves once there is a leader and a replica streaming from it. */
  static async create(o: PatroniOptions): Promise<PatroniCluster> {
    const bin = postgresBinDir();
    if (!bin) throw new Error("no Postgres binaries under /usr/lib/postgresql/*/bin (apt-get install postgresql)");
    const dir = mkdtempSync(join(tmpdir(), "pesan-patroni-"));
    const [etcdClient, etcdPeer, pg1, api1, pg2, api2] = await freePorts(6);
    const nodes: PatroniNode[] = [
      ["pg1", pg1!, api1!],
      ["pg2", pg2!, api2!],
    ].map(([name, pgPort, apiPort]) => ({ name: name as string, pgPort: pgPort as number, apiPort: apiPort as number, dataDir: join(dir, name as string, "data"), logFile: join(dir, `${name}.log`) }));
    const c = new PatroniCluster(dir, nodes, [etcdClient!, etcdPeer!], o.synchronous);
    try {
      await c.startEtcd();
      for (const n of nodes) c.writeConfig(n, bin);
      if (asRoot()) {
        const { uid, gid } = postgresIds();
        for (const n of nodes) for (const d of [join(dir, n.name)]) chownSync(d, uid, gid);
        chownSync(dir, uid, gid);
      }
      // The first bootstraps (initdb) and becomes the leader; the second then copies it.
      c.startNode(nodes[0]!);
      await c.waitPrimary(o.readyTimeoutMs ?? 90_000);
      c.startNode(nodes[1]!);
      await c.waitReplicating(o.readyTimeoutMs ?? 90_000);
    } catch (e) {
      const logs = c.logTails();
      await c.close();
      throw new Error(`${(e as Error).message}\n${logs}`);
    }
    return c;
  }

  /** libpq's multi-host URL of both nodes, as pesan's DATABASE_URL takes it. */
  url(database = "postgres"): string {
    return `postgres://postgres@${this.nodes.map((n) => `127.0.0.1:${n.pgPort}`).join(",")}/${database}?target_session_attrs=read-write`;
  }

  nodeUrl(n: PatroniNode, database = "postgres"): string {
    return `postgres://postgres@127.0.0.1:${n.pgPort}/${database}`;
  }

  /** The node Patroni's REST API calls the primary (GET /primary answers 200 there only). */
  async primary(): Promise<PatroniNode | undefined> {
    for (const n of this.nodes) if ((await this.api(n, "/primary")) === 200) return n;
    return undefined;
  }

  async waitPrimary(timeoutMs: number, not?: PatroniNode): Promise<PatroniNode> {
    return until("a Patroni leader", timeoutMs, async () => {
      const p = await this.primary();
      if (p === undefined || p === not) return undefined;
      // Writable, not only elected: the promotion has finished.
      const [r] = await queryRows<{ ro: string }>(this.nodeUrl(p), "SELECT current_setting('transaction_read_only') AS ro");
      return r?.ro === "off" ? p : undefined;
    });
  }

  /** The primary's pg_stat_replication shows the other node streaming (and, in synchronous mode, as the sync standby). */
  async waitReplicating(timeoutMs: number): Promise<void> {
    await until(this.synchronous ? "a synchronous replica streaming" : "a replica streaming", timeoutMs, async () => {
      const p = await this.primary();
      if (!p) return undefined;
      const rows = await queryRows<{ state: string; sync_state: string }>(this.nodeUrl(p), "SELECT state, sync_state FROM pg_stat_replication");
      if (!rows.some((r) => r.state === "streaming" && (!this.synchronous || r.sync_state === "sync"))) return undefined;
      // And Patroni knows it (the sync key in etcd): only then would it fail over to the replica.
      const r = await fetch(`http://127.0.0.1:${p.apiPort}/cluster`, { signal: AbortSignal.timeout(2000) });
      const { members } = (await r.json()) as { members?: Array<{ name: string; role: string; state: string }> };
      const want = this.synchronous ? "sync_standby" : "replica";
      return members?.some((m) => m.name !== p.name && m.role === want && m.state === "running") ? true : undefined;
    });
  }

  /**
   * The postmaster's PID (first line of postmaster.pid), or undefined when it is not running: a
   * killed postmaster leaves its file behind, so the PID counts only while that process is a
   * postgres of this data directory (a reused PID is somebody else's process).
   */
  postmasterPid(n: PatroniNode): number | undefined {
    const f = join(n.dataDir, "postmaster.pid");
    if (!existsSync(f)) return undefined;
    const pid = Number(readFileSync(f, "utf8").split("\n")[0]);
    if (!Number.isInteger(pid) || pid <= 0) return undefined;
    try {
      return readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").includes(n.dataDir) ? pid : undefined;
    } catch {
      return undefined;
    }
  }

  /**
   * kill -9 of a node's postmaster: Postgres dies as in a crash, its backends with it (they
   * notice their postmaster's death); Patroni lives on. `also`: more PIDs killed with it (a
   * stopped walsender cannot notice anything).
   */
  killPostgres(n: PatroniNode, also: number[] = []): number {
    const pid = this.postmasterPid(n);
    if (pid === undefined) throw new Error(`${n.name}: no postmaster.pid`);
    for (const p of [pid, ...also]) process.kill(p, "SIGKILL");
    for (const p of also) this.stalled.delete(p);
    return pid;
  }

  /** The whole node dies at once, as with its machine: its Patroni (SIGKILL) and its Postgres. */
  async killNode(n: PatroniNode): Promise<void> {
    killGroup(n.proc);
    await exited(n.proc);
    this.killPostgres(n);
  }

  /**
   * SIGSTOP of the primary's walsenders: from now on nothing it commits reaches the replica, as
   * when the replica lags behind or the network between them is slow. Returns their PIDs.
   */
  async stallReplication(primary: PatroniNode): Promise<number[]> {
    const rows = await queryRows<{ pid: number }>(this.nodeUrl(primary), "SELECT pid FROM pg_stat_replication");
    if (rows.length === 0) throw new Error(`${primary.name}: no walsender to stall`);
    for (const r of rows) {
      this.stalled.add(r.pid);
      process.kill(r.pid, "SIGSTOP");
    }
    return rows.map((r) => r.pid);
  }

  /** The last lines of every log, for an error message. */
  logTails(lines = 30): string {
    const files = [join(this.dir, "etcd.log"), ...this.nodes.map((n) => n.logFile)];
    return files
      .filter((f) => existsSync(f))
      .map((f) => `--- ${f}\n${readFileSync(f, "utf8").split("\n").slice(-lines).join("\n")}`)
      .join("\n");
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    // SIGKILL ends a stopped process too; the SIGCONT after it only so it goes at once.
    for (const pid of this.stalled) {
      for (const sig of ["SIGKILL", "SIGCONT"] as const) {
        try {
          process.kill(pid, sig);
        } catch {
          // gone already
        }
      }
    }
    this.stalled.clear();
    // Patroni first (else it restarts Postgres), then each postmaster (Patroni starts it in a
    // session of its own, so it outlives its Patroni), then etcd.
    for (const n of this.nodes) killGroup(n.proc);
    await Promise.all(this.nodes.map((n) => exited(n.proc)));
    for (const n of this.nodes) {
      const pid = this.postmasterPid(n);
      if (pid !== undefined) {
        try {
          process.kill(pid, "SIGKILL");
        } catch {
          // not running
        }
      }
    }
    killGroup(this.etcd);
    await exited(this.etcd);
    // Backends notice their postmaster's death within a moment; the directory goes regardless.
    rmSync(this.dir, { recursive: true, force: true });
  }

  private async api(n: PatroniNode, path: string): Promise<number> {
    try {
      const r = await fetch(`http://127.0.0.1:${n.apiPort}${path}`, { signal: AbortSignal.timeout(2000) });
      await r.body?.cancel();
      return r.status;
    } catch {
      return 0;
    }
  }

  private async startEtcd(): Promise<void> {
    const client = `http://127.0.0.1:${this.etcdClientPort}`;
    const peer = `http://127.0.0.1:${this.etcdPeerPort}`;
    const log = openSync(join(this.dir, "etcd.log"), "a");
    this.etcd = spawn(
      "etcd",
      [
        "--name", "etcd1",
        "--data-dir", join(this.dir, "etcd"),
        "--listen-client-urls", client, "--advertise-client-urls", client,
        "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
        "--initial-cluster", `etcd1=${peer}`,
        "--initial-cluster-state", "new",
      ],
      { stdio: ["ignore", log, log], detached: true },
    );
    closeSync(log);
    await until("etcd answering /health", 30_000, async () => {
      const r = await fetch(`${client}/health`, { signal: AbortSignal.timeout(2000) });
      const body = (await r.json()) as { health?: string };
      return body.health === "true" ? true : undefined;
    });
  }

  /** Patroni reads YAML, of which JSON is a part. */
  private writeConfig(n: PatroniNode, bin: string): void {
    const nodeDir = join(this.dir, n.name);
    mkdirSync(nodeDir, { recursive: true });
    const config = {
      scope: "pesan-test",
      name: n.name,
      log: { level: "INFO" },
      restapi: { listen: `127.0.0.1:${n.apiPort}`, connect_address: `127.0.0.1:${n.apiPort}` },
      etcd3: { hosts: [`127.0.0.1:${this.etcdClientPort}`] },
      bootstrap: {
        dcs: {
          ttl: 10,
          loop_wait: 1,
          retry_timeout: 3,
          maximum_lag_on_failover: 1048576,
          // Fail over when the primary's Postgres crashes, rather than restart it in place.
          primary_start_timeout: 0,
          synchronous_mode: this.synchronous,
          postgresql: {
            use_pg_rewind: true,
            parameters: { wal_level: "replica", hot_standby: "on", wal_log_hints: "on", max_wal_senders: 10, max_replication_slots: 10, max_connections: 200 },
          },
        },
        initdb: [{ encoding: "UTF8" }, { auth: "trust" }],
        pg_hba: ["local all all trust", "host replication all 127.0.0.1/32 trust", "host all all 127.0.0.1/32 trust"],
      },
      postgresql: {
        listen: `127.0.0.1:${n.pgPort}`,
        connect_address: `127.0.0.1:${n.pgPort}`,
        data_dir: n.dataDir,
        bin_dir: bin,
        pgpass: join(nodeDir, "pgpass"),
        authentication: { superuser: { username: "postgres", password: "postgres" }, replication: { username: "replicator", password: "replicator" } },
        // fsync off: the tests crash Postgres, not the machine (the page cache survives).
        parameters: { unix_socket_directories: nodeDir, fsync: "off" },
        pg_hba: ["local all all trust", "host replication all 127.0.0.1/32 trust", "host all all 127.0.0.1/32 trust"],
      },
      watchdog: { mode: "off" },
      tags: { nofailover: false, noloadbalance: false, clonefrom: false, nosync: false },
    };
    writeFileSync(join(nodeDir, "patroni.yml"), JSON.stringify(config, null, 2));
  }

  private startNode(n: PatroniNode): void {
    const log = openSync(n.logFile, "a");
    const yml = join(this.dir, n.name, "patroni.yml");
    const [cmd, args] = asRoot() ? ["runuser", ["-u", "postgres", "--", "patroni", yml]] : ["patroni", [yml]];
    n.proc = spawn(cmd, args, { stdio: ["ignore", log, log], detached: true, cwd: join(this.dir, n.name) });
    closeSync(log);
  }
}

/** SIGKILL to a detached child's whole process group (runuser, Patroni and its helpers). */
function killGroup(p: ChildProcess | undefined): void {
  if (!p?.pid || p.exitCode !== null || p.signalCode !== null) return;
  try {
    process.kill(-p.pid, "SIGKILL");
  } catch {
    // gone
  }
}

function exited(p: ChildProcess | undefined): Promise<void> {
  if (!p || p.exitCode !== null || p.signalCode !== null) return Promise.resolve();
  return new Promise((r) => p.once("exit", () => r()));
}
