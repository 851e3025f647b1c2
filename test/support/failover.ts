/**
 * A Redis failover under a counted load, as the Redis HA tests run it (test/redis-sentinel,
 * test/redis-cluster): the fault, the promotion, the gap until a fresh request is answered, and
 * the exactly-once checks of the load afterwards.
 */
import type { Cluster } from "@pesan/cluster";
import { sleep, sql } from "./e2e.ts";
import { startCountedLoad } from "./load.ts";
import { expectExactlyOnce, expectSamePids, firstAnswerAfter, pids } from "./outage.ts";

export interface FailoverOptions {
  cluster: Cluster;
  dbUrl: string;
  /** The load's user names and bodies (see startCountedLoad). */
  label: string;
  /** Breaks the primary (master); returns its port. */
  fault: () => Promise<number>;
  /** Resolves with the port of the node promoted in its place. */
  waitPromoted: (old: number) => Promise<number>;
  /** Runs once a fresh request was answered again, with the load still on. */
  recover: (old: number) => Promise<void>;
}

export interface Failover {
  old: number;
  promoted: number;
  promotedMs: number;
  gapMs: number;
  stallMs: number;
  counts: string;
}

/**
 * A counted load through the cluster's first gateway; `fault` breaks the primary (returns its port); once a
 * replica is promoted and a fresh request is answered, `recover` runs (with the load still on),
 * then the load finishes and is checked: same PIDs, every SEND stored once and pushed once.
 */
export async function failoverUnderLoad(o: FailoverOptions): Promise<Failover> {
  const { cluster, label, fault, recover } = o;
  const address = cluster.addresses[0]!;
  const procs = [...cluster.gateways, ...cluster.routers];
  const before = pids(procs);
  const load = await startCountedLoad({ address, label, pairs: 3, window: 3, pauseMs: 10 });
  try {
    const answered = () => load.sent.filter((m) => m.reply).length;
    const waitAnswered = async (n: number, what: string) => {
      const deadline = Date.now() + 20_000;
      while (answered() < n) {
        if (Date.now() > deadline) throw new Error(`${what}: ${answered()} of ${n} SENDs answered`);
        await sleep(50);
      }
    };
    // Load flowing through the first primary before it fails.
    await waitAnswered(30, "the load did not get going");
    const faultAt = Date.now();
    const old = await fault();
    const [promoted, gapMs] = await Promise.all([
      o.waitPromoted(old).then((port) => ({ port, ms: Date.now() - faultAt })),
      firstAnswerAfter(address, faultAt, 45_000),
    ]);
    expect(promoted.port).not.toBe(old);
    expect(gapMs).toBeGreaterThan(0);
    await recover(old);
    // The load goes on through the new primary for a while, then every SEND in flight ends.
    await waitAnswered(answered() + 30, "the load did not go on after the failover");
    await load.finish();

    expectSamePids(before);
    const c = await expectExactlyOnce(o.dbUrl, load, label);
    expect((await sql<{ n: number }>(o.dbUrl, "SELECT count(*)::int AS n FROM messages WHERE body LIKE $1", [`${label} %`]))[0]!.n).toBe(c.sent);
    // The longest time without any answer to the load, around the fault.
    const done = load.sent.map((m) => m.doneAt!).sort((a, b) => a - b);
    let stallMs = 0;
    for (let i = 1; i < done.length; i++) stallMs = Math.max(stallMs, done[i]! - done[i - 1]!);
    // Sentinel's promotion plus a reconnect (at most 1 s apart) bounds the gap; generous for a loaded machine.
    expect(gapMs).toBeLessThan(promoted.ms + 10_000);
    return { old, promoted: promoted.port, promotedMs: promoted.ms, gapMs, stallMs, counts: `${c.sent} sent, ${c.retried} retried, ${c.unavailable} ERR UNAVAILABLE; 0 lost, 0 duplicated` };
  } finally {
    load.close();
  }
}


/** One line for the test's log. */
export function describeFailover(f: Failover, detectMs: string): string {
  return `master :${f.old} -> :${f.promoted} promoted after ${f.promotedMs} ms (${detectMs}); first fresh request answered ${f.gapMs} ms after the fault; longest stall of the load ${f.stallMs} ms; ${f.counts}`;
}
