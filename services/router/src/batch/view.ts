/**
 * The batch's reads: sessions and users as this transaction sees them, fetched in bulk up front
 * (one round trip, store.batchView) and kept up to date by the batch's own changes, so the
 * commands of one batch ask Postgres a question once.
 */
import type { Queryable } from "@pesan/shared/db";
import * as store from "../store.ts";
import type { Session, StoredReply } from "../store.ts";
import type { CoreSettings, ReqCtx } from "./types.ts";

const endpointKey = (gateway: string, addr: string): string => `${gateway}\u0000${addr}`;
/** Another cluster's session has no endpoint here (gateway = addr = '', shared by all of them). */
const hasEndpoint = (s: Session): boolean => s.gateway !== "";

export class BatchView {
  private readonly tx: Queryable;
  private readonly settings: CoreSettings;
  private readonly onBoxFull: (() => void) | undefined;
  private readonly userExists = new Map<string, boolean>();
  private readonly sessByUser = new Map<string, Session | null>();
  private readonly sessByEndpoint = new Map<string, string | null>();
  /** Undelivered messages per SEND target (capped at boxLimit), plus what this batch added. */
  private readonly boxes = new Map<string, number>();
  private linkedState: boolean | undefined;
  private upClusters: Set<string> | undefined;

  constructor(tx: Queryable, settings: CoreSettings, onBoxFull?: () => void) {
    this.tx = tx;
    this.settings = settings;
    this.onBoxFull = onBoxFull;
  }

  /**
   * The bulk reads that serve most of the batch: the sessions at every sender's address, every
   * SEND target with its session and box size, and the stored first replies of tagged SENDs
   * (returned, for the exactly-once check).
   */
  async prefetch(reqs: readonly ReqCtx[], staleBefore: Date): Promise<Map<string, StoredReply>> {
    const endpoints = new Map<string, { gateway: string; addr: string }>();
    for (const r of reqs) endpoints.set(endpointKey(r.in.gateway, r.in.addr), { gateway: r.in.gateway, addr: r.in.addr });
    const targets = new Set<string>();
    const tagged: Array<{ gateway: string; addr: string; tag: string }> = [];
    for (const r of reqs) {
      if (r.req?.cmd !== "SEND") continue;
      targets.add(r.req.to);
      if (r.tag !== undefined) tagged.push({ gateway: r.in.gateway, addr: r.in.addr, tag: r.tag });
    }
    if (endpoints.size === 0) return new Map();
    const v = await store.batchView(this.tx, { endpoints: [...endpoints.values()], targets: [...targets], boxLimit: this.settings.boxLimit, tagged, staleBefore });
    for (const k of endpoints.keys()) this.sessByEndpoint.set(k, null);
    for (const s of v.sessions) this.setSession(s);
    for (const n of targets) {
      if (this.userExists.has(n)) continue;
      this.userExists.set(n, false);
      if (!this.sessByUser.has(n)) this.sessByUser.set(n, null);
    }
    for (const u of v.users) {
      this.userExists.set(u.name, true);
      // A target that also sent in this batch already has its session from its endpoint.
      if (u.session && !this.sessByUser.get(u.name)) this.setSession(u.session);
    }
    for (const [name, n] of v.boxes) this.boxes.set(name, n);
    return v.replies;
  }

  private async loadUsers(names: string[]): Promise<void> {
    const unknown = names.filter((n) => !this.userExists.has(n));
    if (unknown.length === 0) return;
    const found = await store.usersWithSessions(this.tx, unknown);
    for (const n of unknown) {
      this.userExists.set(n, false);
      if (!this.sessByUser.has(n)) this.sessByUser.set(n, null);
    }
    for (const f of found) {
      this.userExists.set(f.name, true);
      if (f.session) this.setSession(f.session);
    }
  }

  async userExistsNamed(name: string): Promise<boolean> {
    await this.loadUsers([name]);
    return this.userExists.get(name) === true;
  }

  /** The user's session as this batch knows it (loading it if needed); undefined when offline. */
  async sessionOfUser(name: string): Promise<Session | undefined> {
    if (!this.sessByUser.has(name)) await this.loadUsers([name]);
    return this.sessByUser.get(name) ?? undefined;
  }

  /** The session at an endpoint as far as this batch has read; no query. */
  cachedSessionAt(gateway: string, addr: string): Session | undefined {
    const user = this.sessByEndpoint.get(endpointKey(gateway, addr));
    return user ? (this.sessByUser.get(user) ?? undefined) : undefined;
  }

  async sessionAt(gateway: string, addr: string): Promise<Session | undefined> {
    const key = endpointKey(gateway, addr);
    if (!this.sessByEndpoint.has(key)) {
      this.sessByEndpoint.set(key, null);
      const s = await store.sessionAt(this.tx, gateway, addr);
      if (s) this.setSession(s);
    }
    return this.cachedSessionAt(gateway, addr);
  }

  setSession(s: Session): void {
    const old = this.sessByUser.get(s.user);
    if (old && hasEndpoint(old)) this.sessByEndpoint.set(endpointKey(old.gateway, old.addr), null);
    this.sessByUser.set(s.user, s);
    this.userExists.set(s.user, true);
    if (!hasEndpoint(s)) return;
    const key = endpointKey(s.gateway, s.addr);
    const other = this.sessByEndpoint.get(key);
    if (other && other !== s.user) this.sessByUser.set(other, null);
    this.sessByEndpoint.set(key, s.user);
  }

  removeSession(user: string): void {
    const s = this.sessByUser.get(user);
    if (s && hasEndpoint(s)) this.sessByEndpoint.set(endpointKey(s.gateway, s.addr), null);
    this.sessByUser.set(user, null);
  }

  forgetUser(user: string): void {
    this.removeSession(user);
    this.userExists.set(user, false);
  }

  markRegistered(user: string): void {
    this.userExists.set(user, true);
    if (!this.sessByUser.has(user)) this.sessByUser.set(user, null);
  }

  /**
   * Whether recipient's box takes one more undelivered message (BOX_LIMIT); if so it is counted.
   * A soft bound: routers count their own batches, so two batching at once may both take the
   * last place (at most one batch over). Counted when the batch began, plus its own sends.
   */
  async boxTakes(recipient: string): Promise<boolean> {
    const limit = this.settings.boxLimit;
    if (limit <= 0) return true;
    let n = this.boxes.get(recipient);
    if (n === undefined) n = (await store.boxSizes(this.tx, [recipient], limit)).get(recipient) ?? 0;
    if (n >= limit) {
      this.onBoxFull?.();
      return false;
    }
    this.boxes.set(recipient, n + 1);
    return true;
  }

  /** Whether this cluster is linked to others (peer-sync ran here); asked once per batch. */
  async linked(): Promise<boolean> {
    this.linkedState ??= await store.isLinked(this.tx);
    return this.linkedState;
  }

  /** Whether another cluster is UP as peer-sync last saw it (server_list); read once per batch. */
  async clusterUp(name: string): Promise<boolean> {
    this.upClusters ??= new Set((await store.servers(this.tx)).filter((x) => x.active && !x.isSelf).map((x) => x.name));
    return this.upClusters.has(name);
  }
}
