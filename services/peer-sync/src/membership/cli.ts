/**
 * `invite` and `revoke`: peer-sync's subcommands, run by an operator on any member with the
 * service's own configuration (DATABASE_URL, SERVER_NAME, SYNC_URL, PEERS). They work on the
 * database; a running peer-sync reacts at once (NOTIFY pesan_members, migration 014).
 */
import { migrate, PgDb, type Db } from "@pesan/shared/db";
import { parseCommandLine, type CliValues } from "@pesan/shared/cli";
import { ConfigError } from "@pesan/shared/errors";
import { isClusterName, CLUSTER_NAME_RULE } from "@pesan/shared/names";
import { createLogger, type Logger } from "@pesan/shared/observability";
import { enqueueFrame } from "@pesan/shared/replication";
import { loadPeerSyncConfig, type PeerSyncConfig } from "../config.ts";
import { nameTaken } from "./checks.ts";
import * as members from "./store.ts";
import { encodeInvite, inviteMacKey, newInvite, parseTtl } from "./token.ts";

export const INVITE_USAGE = `usage: node services/peer-sync/src/main.ts invite --name <cluster> [--ttl 1h]

Issues a one-time invite for a new cluster named <cluster> and prints its token (one line on
stdout; logs go to stderr). Give the token to the new cluster's operator: its peer-sync joins
with JOIN=<token> and SERVER_NAME=<cluster>, once, before the invite expires (--ttl: 90s, 30m,
1h, 2d; at most 30d; default 1h). Treat the token like a PEERS key until it is used.
Uses this cluster's peer-sync configuration (DATABASE_URL, SERVER_NAME, SYNC_URL, ...).
`;

export const REVOKE_USAGE = `usage: node services/peer-sync/src/main.ts revoke <cluster>

Removes a member that joined by invite, here at once and on every other member (member.revoke):
its requests are refused (403 unknown_sender) from then on. Only a new invite brings it back.
A peer configured in PEERS is removed from PEERS instead.
Uses this cluster's peer-sync configuration (DATABASE_URL, SERVER_NAME, ...).
`;

class UsageError extends Error {}

async function withDb<T>(config: PeerSyncConfig, logger: Logger, run: (db: Db) => Promise<T>): Promise<T> {
  const db = new PgDb(config.DATABASE_URL, { applicationName: `peer-sync-cli-${config.SERVER_NAME}`, max: 1 });
  try {
    const applied = await migrate(db);
    if (applied.length > 0) logger.info({ applied }, "migrations applied");
    return await run(db);
  } finally {
    await db.close();
  }
}

type CommandLine = { values: CliValues; positionals: string[] };

async function invite(cl: CommandLine, config: PeerSyncConfig, logger: Logger, now: Date): Promise<string> {
  const name = cl.values.name;
  if (typeof name !== "string" || !isClusterName(name)) throw new UsageError(`--name: must be ${CLUSTER_NAME_RULE}`);
  const ttlText = typeof cl.values.ttl === "string" ? cl.values.ttl : "1h";
  const ttlMs = parseTtl(ttlText);
  if (ttlMs === undefined) throw new UsageError("--ttl: must be a number and s, m, h or d (90s, 30m, 1h, 2d), at most 30d");
  return withDb(config, logger, async (db) => {
    const active = new Set((await members.activeMembers(db)).map((m) => m.name));
    const taken = nameTaken(name, { self: config.SERVER_NAME, staticPeers: new Set(config.peers.map((p) => p.name)), activeMembers: active });
    if (taken) throw new UsageError(`--name: ${taken}`);
    const inv = newInvite({ issuer: config.SERVER_NAME, syncUrl: config.syncUrl, name, expiresAt: new Date(now.getTime() + ttlMs) });
    await members.createInvite(db, { id: inv.id, name, macKey: inviteMacKey(inv), expiresAt: new Date(inv.expiresAt) });
    // The invite's id and expiry only: the token is printed, never logged.
    logger.info({ member: name, invite: inv.id, expiresAt: inv.expiresAt, syncUrl: config.syncUrl }, "invite issued");
    return `${encodeInvite(inv)}\n`;
  });
}

async function revoke(cl: CommandLine, config: PeerSyncConfig, logger: Logger, now: Date): Promise<string> {
  const [name, ...rest] = cl.positionals;
  if (name === undefined || rest.length > 0 || !isClusterName(name)) throw new UsageError(`revoke takes one cluster name (${CLUSTER_NAME_RULE})`);
  if (name === config.SERVER_NAME) throw new UsageError(`${name} is this cluster`);
  if (config.peers.some((p) => p.name === name)) throw new UsageError(`${name} is a peer configured in PEERS: remove it from PEERS (on both sides) instead`);
  return withDb(config, logger, async (db) => {
    const done = await db.withTransaction(async (tx) => {
      // The membership revoked is the one that is active here: named by its invite, so a newer
      // one (a new invite, admitted after this revoke) is left alone wherever this arrives late.
      const cur = await members.lockMembership(tx, name);
      if (!cur) return false;
      const invite = cur.inviteId ?? undefined;
      await members.revokeMember(tx, name, now, invite);
      await enqueueFrame(tx, "member.revoke", invite === undefined ? { name } : { name, invite });
      return true;
    });
    if (!done) throw new UsageError(`${name} is not a member here (never joined, or revoked already)`);
    logger.info({ member: name }, "member revoked; every other member is told");
    return `revoked ${name}\n`;
  });
}

/** Runs `invite` or `revoke`; the exit code (2: bad usage or configuration, 1: failed). */
export async function runMembershipCommand(command: "invite" | "revoke", argv: string[], env: NodeJS.ProcessEnv = process.env): Promise<number> {
  // --help before any configuration is read, as for the service itself.
  const cl =
    command === "invite"
      ? parseCommandLine(argv, { usage: INVITE_USAGE, options: { name: { type: "string" }, ttl: { type: "string" } } })
      : parseCommandLine(argv, { usage: REVOKE_USAGE, allowPositionals: true });
  if (!cl) return 0;
  let config: PeerSyncConfig;
  try {
    config = loadPeerSyncConfig(env);
  } catch (e) {
    process.stderr.write(`${e instanceof ConfigError ? e.message : String(e)}\n`);
    return 2;
  }
  const logger = createLogger("peer-sync", config.LOG_LEVEL, { cluster: config.SERVER_NAME, command }, 2);
  try {
    process.stdout.write(await (command === "invite" ? invite : revoke)(cl, config, logger, new Date()));
    return 0;
  } catch (e) {
    if (e instanceof UsageError) {
      process.stderr.write(`${command}: ${e.message}\n`);
      return 2;
    }
    logger.error({ err: e }, `${command} failed`);
    return 1;
  }
}
