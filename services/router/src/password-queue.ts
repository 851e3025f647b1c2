/**
 * The bounded queue of password work (REGISTER, LOGIN, UNREGISTER and what the same client sent
 * right behind them), scheduled apart from the batches so that a slow hash delays nobody else.
 *
 * - At most `concurrency` jobs run at once (each holds a libuv thread while it hashes), and one
 *   IP at most `concurrency - 1` of them (when concurrency > 1): a slot is always left for the
 *   others.
 * - Jobs wait in one FIFO per client IP, and the IPs take turns: a flood from one IP delays
 *   that IP, while a login from another address is the next job to start.
 * - Jobs of one endpoint (gateway + address) run one after the other, in arrival order, so
 *   `REGISTER` then `LOGIN` sent in one burst sees the account the REGISTER made.
 * - At most `maxQueued` jobs wait. A job arriving at a full queue pushes out the newest job of
 *   the IP that holds the most (itself, when that is its own IP): "drop": "full".
 * - A job that has not started within `maxWaitMs` is dropped: "expired" (the gateway would
 *   answer `ERR UNAVAILABLE` at BACKEND_TIMEOUT_MS anyway, and a late login helps no one).
 * Pure scheduling: the clock and what running and dropping a job mean are injected.
 */

export interface QueueLimits {
  concurrency: number;
  maxQueued: number;
  maxWaitMs: number;
}

export interface QueuedJob {
  /** Unique; a second push of the same id is ignored. */
  id: string;
  /** The client's IP as the throttle counts it (throttle.ts clientIp). */
  ip: string;
  /** Gateway and address: jobs of one endpoint run in order, never two at once. */
  endpoint: string;
  /** When it was queued (the clock's ms). */
  at: number;
}

export type DropReason = "full" | "expired" | "closed";

export interface QueueDeps<J> {
  now: () => number;
  /** Does the job; must not reject (report errors itself). */
  run: (job: J) => Promise<void>;
  /** Tells the job's client it was not done; called once per dropped job. */
  drop: (job: J, why: DropReason) => void;
}

export class PasswordQueue<J extends QueuedJob> {
  private readonly limits: QueueLimits;
  private readonly deps: QueueDeps<J>;
  /** Waiting jobs, one FIFO per IP; the Map's order is the turn order. */
  private readonly waiting = new Map<string, J[]>();
  private waitingCount = 0;
  /** Queued or running jobs per endpoint. */
  private readonly perEndpoint = new Map<string, number>();
  private readonly runningEndpoints = new Set<string>();
  private readonly runningPerIp = new Map<string, number>();
  private readonly running = new Map<string, Promise<void>>();
  private readonly known = new Set<string>();
  /** When each IP with jobs was last served (a turn number), and jobs per IP queued or running. */
  private readonly served = new Map<string, number>();
  private readonly perIp = new Map<string, number>();
  private turns = 0;
  private closed = false;

  constructor(limits: QueueLimits, deps: QueueDeps<J>) {
    if (limits.concurrency < 1 || limits.maxQueued < 1 || limits.maxWaitMs < 0) throw new Error("PasswordQueue: concurrency and maxQueued must be at least 1");
    this.limits = limits;
    this.deps = deps;
  }

  get waitingJobs(): number {
    return this.waitingCount;
  }

  get runningJobs(): number {
    return this.running.size;
  }

  /** Whether a job of this endpoint waits or runs (its next requests must queue behind it). */
  hasEndpoint(endpoint: string): boolean {
    return (this.perEndpoint.get(endpoint) ?? 0) > 0;
  }

  /** Queues the job (or drops it at once when closed or when its IP holds most of a full queue). */
  push(job: J): void {
    if (this.known.has(job.id)) return;
    if (this.closed) return this.deps.drop(job, "closed");
    this.expire();
    if (this.waitingCount >= this.limits.maxQueued) {
      const [ip, list] = this.longest();
      const own = this.waiting.get(job.ip)?.length ?? 0;
      if (!list || list.length <= own) return this.deps.drop(job, "full");
      this.remove(ip!, list.length - 1, "full");
    }
    this.known.add(job.id);
    let list = this.waiting.get(job.ip);
    if (!list) this.waiting.set(job.ip, (list = []));
    list.push(job);
    this.waitingCount++;
    this.perEndpoint.set(job.endpoint, (this.perEndpoint.get(job.endpoint) ?? 0) + 1);
    this.perIp.set(job.ip, (this.perIp.get(job.ip) ?? 0) + 1);
    this.pump();
  }

  /** Drops the jobs that waited too long; the owner calls this on a timer too. */
  expire(): void {
    const limit = this.deps.now() - this.limits.maxWaitMs;
    for (const [ip, list] of [...this.waiting]) {
      for (let i = list.length - 1; i >= 0; i--) if (list[i]!.at < limit) this.remove(ip, i, "expired");
    }
  }

  /** Drops every waiting job ("closed") and waits for the running ones. Idempotent. */
  async close(): Promise<void> {
    this.closed = true;
    for (const [ip, list] of [...this.waiting]) for (let i = list.length - 1; i >= 0; i--) this.remove(ip, i, "closed");
    await Promise.all([...this.running.values()]);
  }

  private longest(): [string | undefined, J[] | undefined] {
    let best: [string | undefined, J[] | undefined] = [undefined, undefined];
    for (const [ip, list] of this.waiting) if (!best[1] || list.length > best[1].length) best = [ip, list];
    return best;
  }

  private remove(ip: string, index: number, why: DropReason): void {
    const list = this.waiting.get(ip)!;
    const [job] = list.splice(index, 1);
    if (list.length === 0) this.waiting.delete(ip);
    this.waitingCount--;
    this.release(job!);
    this.deps.drop(job!, why);
  }

  private release(job: J): void {
    this.known.delete(job.id);
    decrement(this.perEndpoint, job.endpoint);
    // An IP with nothing left here starts afresh: its turn record goes.
    if (decrement(this.perIp, job.ip) === 0) this.served.delete(job.ip);
  }

  private pump(): void {
    this.expire();
    while (!this.closed && this.running.size < this.limits.concurrency) {
      const next = this.pick();
      if (!next) return;
      this.start(next);
    }
  }

  /**
   * The next job by turns over the IPs: the IP served longest ago (or never) goes first, and
   * in its FIFO the first job whose endpoint is idle.
   */
  private pick(): J | undefined {
    let best: { ip: string; list: J[]; index: number; turn: number } | undefined;
    const perIpCap = this.limits.concurrency > 1 ? this.limits.concurrency - 1 : 1;
    for (const [ip, list] of this.waiting) {
      const turn = this.served.get(ip) ?? 0;
      if (best && turn >= best.turn) continue;
      if ((this.runningPerIp.get(ip) ?? 0) >= perIpCap) continue;
      const index = this.firstRunnable(list);
      if (index >= 0) best = { ip, list, index, turn };
    }
    if (!best) return undefined;
    const [job] = best.list.splice(best.index, 1);
    this.waitingCount--;
    if (best.list.length === 0) this.waiting.delete(best.ip);
    this.served.set(best.ip, ++this.turns);
    return job;
  }

  private firstRunnable(list: J[]): number {
    const passed = new Set<string>();
    for (let i = 0; i < list.length; i++) {
      const e = list[i]!.endpoint;
      if (!this.runningEndpoints.has(e) && !passed.has(e)) return i;
      passed.add(e);
    }
    return -1;
  }

  private start(job: J): void {
    this.runningEndpoints.add(job.endpoint);
    this.runningPerIp.set(job.ip, (this.runningPerIp.get(job.ip) ?? 0) + 1);
    const p = this.deps.run(job).then(
      () => this.finish(job),
      () => this.finish(job),
    );
    this.running.set(job.id, p);
  }

  private finish(job: J): void {
    this.running.delete(job.id);
    this.runningEndpoints.delete(job.endpoint);
    decrement(this.runningPerIp, job.ip);
    this.release(job);
    this.pump();
  }
}

function decrement(m: Map<string, number>, key: string): number {
  const n = (m.get(key) ?? 1) - 1;
  if (n <= 0) m.delete(key);
  else m.set(key, n);
  return Math.max(0, n);
}
