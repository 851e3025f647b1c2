/**
 * Password work off the hot path. A stream batch never hashes: its REGISTER, LOGIN and
 * UNREGISTER requests, and whatever the same endpoint sent behind them, are taken out of it
 * and become jobs on the bounded PasswordQueue. A job hashes (libuv's thread pool) with no
 * transaction open, then runs its one request as a small batch of its own, which also marks
 * the request done (password_requests_done) and counts a failed check (auth_throttle).
 *
 * Exactly once: the stream entry a job came from stays pending (the consumer holds it, see
 * HeldEntries) until every job of it is done, so a router that dies with a request hashed but
 * not committed leaves the entry to be taken over; a router that dies after COMMIT but before
 * acknowledging leaves the mark, and the request is not done again. No password is written
 * anywhere but the stream entry, where it already was.
 *
 * Throttle: a LOGIN or UNREGISTER whose (account, IP), IP or account counter blocks it is
 * answered `ERR RATE_LIMITED` without hashing, before it is queued and again just before its
 * hash (a burst passes the first check before any of its failures is counted).
 */
import { createHash, timingSafeEqual } from "node:crypto";
import type { Db, Queryable } from "@pesan/shared/db";
import { PROTOCOL_ERRORS } from "@pesan/shared/errors";
import { isProbeName, PROBE_NAME_PREFIX } from "@pesan/shared/names";
import { Counter, type Logger, type Registry } from "@pesan/shared/observability";
import { formatErr, isAcceptablePassHash, withTag, type Request } from "@pesan/shared/protocol";
import { emptyPrepared, parsedOf, processBatch, type Batch, type CoreDeps, type Incoming, type Outgoing } from "./batch/index.ts";
import type { PasswordChecker } from "./passwords.ts";
import { PasswordQueue, type DropReason, type QueuedJob, type QueueLimits } from "./password-queue.ts";
import {
  loadThrottle,
  markDone,
  pruneDone,
  pruneRegistrations,
  pruneThrottle,
  recordFailure,
  recordSuccess,
  registrationDone,
  registrationPending,
  registrationsQueued,
  throttleOf,
} from "./password-store.ts";
import * as store from "./store.ts";
import { clientIp, limitedText, verdict } from "./throttle.ts";

/** Commands that need a hash. */
const PASSWORD_COMMANDS = new Set<Request["cmd"]>(["REGISTER", "LOGIN", "UNREGISTER"]);
/** Done marks are kept this long: a stream entry is taken over within CLAIM_IDLE_MS. */
const DONE_RETENTION_MS = 3_600_000;
const EXPIRE_EVERY_MS = 100;
/** How long a LOGIN of a name with a REGISTER queued elsewhere waits for it. */
const REGISTER_WAIT_MS = 1500;
/** A queued REGISTER older than this belongs to a router that died; it is not waited for. */
const REGISTER_STALE_MS = 60_000;
const PRUNE_EVERY_MS = 60_000;

export interface PasswordWorkSettings extends QueueLimits {
  /** Source IPs of proxies that hide client addresses (throttle.ts clientIp). */
  proxyIps: ReadonlySet<string>;
  /** PROBE_PASSWORD: REGISTER of a probe account's name (`probe-...`) needs it; undefined: refused. */
  probePassword?: string | undefined;
}

/** What REGISTER of a probe name without the probe password gets (docs/protocol.md "Probe accounts"). */
export const PROBE_NAME_TEXT = `names starting with ${PROBE_NAME_PREFIX} are reserved for the monitor's probe accounts`;

export interface PasswordWorkDeps {
  /** What a job's small batch runs with (the router's core). */
  core: CoreDeps;
  db: Db;
  passwords: PasswordChecker;
  /** The router's batch runner (commands/index.ts runCommands). */
  runCommands: (b: Batch) => Promise<void>;
  publish: (out: Outgoing[]) => Promise<void>;
  logger: Logger;
  registry: Registry;
  now?: () => number;
}

interface Job extends QueuedJob {
  inc: Incoming;
  tag: string | undefined;
  /** The password command, or undefined for a request queued behind one. */
  req: Extract<Request, { cmd: "REGISTER" | "LOGIN" | "UNREGISTER" }> | undefined;
  resolve: () => void;
  reject: (err: unknown) => void;
}

/** What a stream batch keeps, and what it hands over. */
export interface Split {
  /** For the batch's own transaction. */
  batch: Incoming[];
  /** Replies already decided (throttled LOGINs), published with the batch's. */
  replies: Outgoing[];
  /** Requests now on the queue: entryOf(index) stays pending until done resolves. */
  held: Array<{ index: number; done: Promise<void> }>;
}

const endpointKey = (inc: Incoming) => `${inc.gateway}\u0000${inc.addr}`;

export class PasswordWork {
  readonly name = "password-work";
  private readonly deps: PasswordWorkDeps;
  private readonly settings: PasswordWorkSettings;
  private readonly now: () => number;
  private readonly queue: PasswordQueue<Job>;
  private readonly jobs = new Map<string, { job: Job; done: Promise<void> }>();
  private readonly outcomes: Counter;
  private expirer: NodeJS.Timeout | undefined;
  private pruner: NodeJS.Timeout | undefined;
  private closed = false;

  constructor(deps: PasswordWorkDeps, settings: PasswordWorkSettings) {
    this.deps = deps;
    this.settings = settings;
    this.now = deps.now ?? Date.now;
    this.outcomes = new Counter({
      name: "pesan_router_password_jobs_total",
      help: "Password requests (and requests queued behind them), by outcome",
      labelNames: ["outcome"],
      registers: [deps.registry],
    });
    this.queue = new PasswordQueue<Job>(settings, { now: this.now, run: (j) => this.run(j), drop: (j, why) => this.dropped(j, why) });
  }

  async start(): Promise<void> {
    this.expirer = setInterval(() => this.queue.expire(), EXPIRE_EVERY_MS);
    this.pruner = setInterval(() => this.prune(), PRUNE_EVERY_MS);
  }

  /** Waiting jobs are left pending in the stream (taken over elsewhere); running ones finish. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.expirer);
    clearInterval(this.pruner);
    await this.queue.close();
  }

  /**
   * Takes the password requests out of a stream batch, and every later request of an endpoint
   * that has one queued (here or earlier in the batch), except heartbeats and lease touches,
   * whose order does not matter. LOGINs blocked by the throttle are answered at once.
   */
  async split(incoming: Incoming[]): Promise<Split> {
    const out: Split = { batch: [], replies: [], held: [] };
    const behind = new Set<string>();
    const taken: Array<{ index: number; job: Job }> = [];
    incoming.forEach((inc, index) => {
      // The gateway's own notices (a NUL first): never a password request.
      if (inc.reqId === 0 && inc.text.charCodeAt(0) === 0) return void out.batch.push(inc);
      const p = parsedOf(inc);
      const ep = endpointKey(inc);
      const password = p.ok && PASSWORD_COMMANDS.has(p.req.cmd);
      const live = p.ok && p.req.cmd === "LIVE";
      if (!password && (live || (!behind.has(ep) && !this.queue.hasEndpoint(ep)))) return void out.batch.push(inc);
      behind.add(ep);
      const req = password && p.ok ? (p.req as Job["req"]) : undefined;
      taken.push({ index, job: this.newJob(inc, p.tag, req) });
    });
    if (taken.length === 0) return out;

    const logins = taken.filter((t) => t.job.req?.cmd === "LOGIN");
    const states = logins.length > 0 ? await loadThrottle(this.deps.db, logins.map((t) => ({ user: (t.job.req as { user: string }).user, ip: t.job.ip }))) : new Map();
    const nowMs = this.now();
    const admitted = taken.filter((t) => {
      const r = t.job.req;
      // Refused before any hash and before it is queued: a reserved name, nothing written.
      if (r?.cmd === "REGISTER" && isProbeName(r.user) && !this.isProbePassword(r.password)) {
        this.outcomes.inc({ outcome: "reserved_name" });
        out.replies.push(this.line(t.job, formatErr("BAD_REQUEST", PROBE_NAME_TEXT)));
        return false;
      }
      if (r?.cmd !== "LOGIN") return true;
      const v = verdict(throttleOf(states, r.user, t.job.ip), nowMs);
      if (!v.limited) return true;
      this.outcomes.inc({ outcome: "rate_limited" });
      out.replies.push(this.line(t.job, formatErr("RATE_LIMITED", limitedText(v.retryAfterMs))));
      return false;
    });
    // Written before any job starts: a LOGIN of the name on another router waits for it.
    const registers = admitted.flatMap((t) => (t.job.req?.cmd === "REGISTER" ? [{ id: t.job.id, name: t.job.req.user }] : []));
    await registrationsQueued(this.deps.db, registers, new Date(nowMs));
    for (const t of admitted) out.held.push({ index: t.index, done: this.submit(t.job) });
    return out;
  }

  /** Compared in constant time (of equal-length digests): the answer tells nothing of how close a guess was. */
  private isProbePassword(password: string): boolean {
    const want = this.settings.probePassword;
    if (want === undefined) return false;
    const digest = (s: string) => createHash("sha256").update(s).digest();
    return timingSafeEqual(digest(password), digest(want));
  }

  private newJob(inc: Incoming, tag: string | undefined, req: Job["req"]): Job {
    return { id: inc.msgId, ip: clientIp(inc.addr, this.settings.proxyIps), endpoint: endpointKey(inc), at: this.now(), inc, tag, req, resolve: () => undefined, reject: () => undefined };
  }

  /** Queues the job (once: a batch retried after a failure finds its jobs here). */
  private submit(job: Job): Promise<void> {
    const known = this.jobs.get(job.id);
    if (known) return known.done;
    const done = new Promise<void>((resolve, reject) => {
      job.resolve = resolve;
      job.reject = reject;
    });
    // The consumer handles a rejection (the entry stays pending); this keeps it from floating.
    done.catch(() => undefined);
    this.jobs.set(job.id, { job, done });
    this.queue.push(job);
    return done;
  }

  private line(job: Job, text: string): Outgoing {
    return { gateway: job.inc.gateway, line: [job.inc.addr, withTag(job.tag, text), job.inc.reqId] };
  }

  private settle(job: Job, err?: unknown): void {
    this.jobs.delete(job.id);
    if (err === undefined) job.resolve();
    else job.reject(err);
  }

  private dropped(job: Job, why: DropReason): void {
    this.outcomes.inc({ outcome: why });
    if (why === "closed") {
      // Not answered: the entry stays pending and another router (or this one, restarted) does it.
      this.settle(job, new Error("router closing"));
      return;
    }
    // Load, not the client's failures (those are ERR RATE_LIMITED): the client retries, here or
    // at another server, as it does after the gateway's own ERR UNAVAILABLE.
    const text = formatErr("UNAVAILABLE", `password checks are busy, ${PROTOCOL_ERRORS.UNAVAILABLE}`);
    (async () => {
      if (job.req?.cmd === "REGISTER") await registrationDone(this.deps.db, job.id);
      await this.deps.publish([this.line(job, text)]);
    })().then(
      () => this.settle(job),
      (err: unknown) => this.settle(job, err),
    );
  }

  private async run(job: Job): Promise<void> {
    try {
      const outcome = await this.execute(job);
      this.outcomes.inc({ outcome });
      this.settle(job);
    } catch (err) {
      this.outcomes.inc({ outcome: "failed" });
      this.deps.logger.warn({ err, request: job.id }, "password job failed; its stream entry stays pending and is taken over");
      this.settle(job, err);
    }
  }

  /** Hashes with no transaction open, then runs the request in a small batch of its own. */
  private async execute(job: Job): Promise<string> {
    const { db, passwords } = this.deps;
    const prepared = emptyPrepared();
    let count: ((tx: Queryable, now: Date) => Promise<void>) | undefined;
    const r = job.req;
    let outcome = "done";
    if (r?.cmd === "REGISTER") {
      prepared.newHashes.set(0, await passwords.hash(r.password));
      const id = job.id;
      count = (tx) => registrationDone(tx, id);
    }
    else if (r?.cmd === "LOGIN" || r?.cmd === "UNREGISTER") {
      const user = r.cmd === "LOGIN" ? r.user : await sessionUserAt(db, job.inc.gateway, job.inc.addr);
      // UNREGISTER without a session: the batch answers ERR NOT_LOGGED_IN.
      if (user !== undefined) {
        const v = verdict(throttleOf(await loadThrottle(db, [{ user, ip: job.ip }]), user, job.ip), this.now());
        if (v.limited) {
          await this.deps.publish([this.line(job, formatErr("RATE_LIMITED", limitedText(v.retryAfterMs)))]);
          return "rate_limited";
        }
        let hash = (await store.passHashes(db, [user])).get(user);
        // An unusable stored hash (parameters no router makes) fails this request only.
        if (hash !== undefined && !isAcceptablePassHash(hash)) this.deps.logger.warn({ user, request: job.id }, "stored password hash is not one this cluster accepts; the request is refused (ERR AUTH)");
        let ok = await passwords.verify(r.password, hash);
        if (r.cmd === "LOGIN" && hash === undefined) {
          // No account when we looked: a REGISTER of the name on another router may have been
          // committed while we hashed, or be queued there still. Look again after it.
          await this.registrationSettled(user);
          hash = (await store.passHashes(db, [user])).get(user);
          if (hash !== undefined) ok = await passwords.verify(r.password, hash);
        }
        if (r.cmd === "LOGIN") {
          let lost = false;
          if (!ok) for (const h of (await store.lostHashes(db, [user])).get(user) ?? []) if (!lost && (await passwords.verify(r.password, h))) lost = true;
          prepared.loginVerdicts.set(0, { ok, hash, ...(lost ? { lost: true } : {}) });
          // A password of an account that lost a registration race is not a guess.
          if (!lost) count = ok ? (tx, now) => recordSuccess(tx, user, job.ip, now) : (tx, now) => recordFailure(tx, user, job.ip, now);
        } else {
          prepared.unregisterVerdicts.set(0, { ok, user, hash });
          if (!ok) count = (tx, now) => recordFailure(tx, user, job.ip, now);
        }
        if (!ok) outcome = "wrong_password";
      }
    }
    let repeated = false;
    const out = await processBatch(
      this.deps.core,
      [job.inc],
      async (b) => {
        repeated = !(await markDone(b.tx, job.inc.msgId, b.now));
        if (repeated) return;
        await count?.(b.tx, b.now);
        await this.deps.runCommands(b);
      },
      prepared,
    );
    // Done by a router that died before acknowledging its entry: its reply went out then, or not at all.
    if (repeated) return "repeated";
    await this.deps.publish(out);
    return outcome;
  }

  /**
   * Waits (a little) for a REGISTER of this name queued on another router: REGISTER then LOGIN
   * sent in one burst may reach two routers in two stream entries. True if there was one.
   */
  private async registrationSettled(user: string): Promise<boolean> {
    const since = new Date(this.now() - REGISTER_STALE_MS);
    if (!(await registrationPending(this.deps.db, user, since))) return false;
    const until = this.now() + REGISTER_WAIT_MS;
    while (this.now() < until && (await registrationPending(this.deps.db, user, since))) await new Promise((r) => setTimeout(r, 25));
    return true;
  }

  private prune(): void {
    const now = new Date(this.now());
    (async () => {
      await pruneDone(this.deps.db, new Date(now.getTime() - DONE_RETENTION_MS));
      await pruneThrottle(this.deps.db, now);
      await pruneRegistrations(this.deps.db, new Date(now.getTime() - REGISTER_STALE_MS));
    })().catch((err: unknown) => this.deps.logger.warn({ err }, "pruning password work state failed"));
  }
}

/** The user of the session at this endpoint, read without a lock (the job's batch checks again). */
async function sessionUserAt(q: Queryable, gateway: string, addr: string): Promise<string | undefined> {
  const r = await q.query<{ user_name: string }>("SELECT user_name FROM sessions WHERE gateway = $1 AND addr = $2", [gateway, addr]);
  return r.rows[0]?.user_name;
}
