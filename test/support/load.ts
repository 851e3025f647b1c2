/**
 * A counted load for the outage tests: pairs of clients, each sender keeping a few tagged SENDs
 * in flight and retrying each like a real client (the same tag again on ERR UNAVAILABLE or no
 * answer), each receiver a CAP ACK session that acknowledges every MSG. Afterwards the caller
 * checks the database and the receivers against exactly what was sent.
 */
import { loginClient, requestWithRetry, sleep } from "./e2e.ts";
import type { RawClient } from "./udp.ts";

export interface Sent {
  pair: number;
  tag: string;
  body: string;
  reply?: string;
  sends?: number;
  /** When the final reply came, ms after the load started. */
  doneAt?: number;
}

export interface CountedLoad {
  readonly sent: Sent[];
  /** When the load started (Date.now()); each Sent's doneAt counts from here. */
  readonly startedAt: number;
  readonly senders: RawClient[];
  readonly receivers: RawClient[];
  /** Stops adding SENDs and waits for every one in flight to get its final reply. */
  finish(): Promise<void>;
  close(): void;
  /** Distinct message ids each receiver was pushed (a resend of the same id counts once). */
  receivedIds(pair: number): Set<string>;
  /** ERR UNAVAILABLE answers seen, over all senders. */
  unavailable(): number;
}

export interface CountedLoadOptions {
  address: string;
  /** User names are `${label}s<i>` and `${label}r<i>`; bodies `${label} <i>/<n>`. */
  label: string;
  pairs: number;
  /** SENDs in flight per sender. */
  window: number;
  /** Pause between a reply and that slot's next SEND (keeps the rate modest on a small machine). */
  pauseMs?: number;
  /** How long one SEND may take in all (its retries included). */
  deadlineMs?: number;
}

export async function startCountedLoad(o: CountedLoadOptions): Promise<CountedLoad> {
  const senders: RawClient[] = [];
  const receivers: RawClient[] = [];
  const acked = new Map<RawClient, number>();
  for (let i = 0; i < o.pairs; i++) {
    senders.push((await loginClient(o.address, `${o.label}s${i}`, "secret1", { register: true })).c);
    const r = (await loginClient(o.address, `${o.label}r${i}`, "secret1", { register: true, capAck: true })).c;
    receivers.push(r);
    acked.set(r, 0);
  }
  // Every MSG is acknowledged, so the server stops resending it and counts it delivered.
  const acker = setInterval(() => {
    for (const r of receivers) {
      const from = acked.get(r)!;
      for (const l of r.lines.slice(from)) if (l.startsWith("MSG ")) r.send(`ACK ${l.split(" ")[1]}`);
      acked.set(r, r.lines.length);
    }
  }, 20);

  const t0 = Date.now();
  const sent: Sent[] = [];
  let stopping = false;
  let n = 0;
  const slot = async (pair: number): Promise<void> => {
    while (!stopping) {
      const k = n++;
      const m: Sent = { pair, tag: `${o.label}${pair}x${k}`, body: `${o.label} ${pair}/${k}` };
      sent.push(m);
      const r = await requestWithRetry(senders[pair]!, m.tag, `SEND ${o.label}r${pair} ${m.body}`, { retryMs: 1000, deadlineMs: o.deadlineMs ?? 60_000 });
      m.reply = r.reply;
      m.sends = r.sends;
      m.doneAt = Date.now() - t0;
      if (o.pauseMs) await sleep(o.pauseMs);
    }
  };
  const slots: Array<Promise<void>> = [];
  for (let i = 0; i < o.pairs; i++) for (let w = 0; w < o.window; w++) slots.push(slot(i));
  const all = Promise.allSettled(slots);

  return {
    sent,
    startedAt: t0,
    senders,
    receivers,
    finish: async () => {
      stopping = true;
      const results = await all;
      const failed = results.find((r) => r.status === "rejected");
      if (failed) throw (failed as PromiseRejectedResult).reason;
    },
    close: () => {
      stopping = true;
      clearInterval(acker);
      for (const c of [...senders, ...receivers]) c.close();
    },
    receivedIds: (pair) => new Set(receivers[pair]!.lines.filter((l) => l.startsWith("MSG ")).map((l) => l.split(" ")[1]!)),
    unavailable: () => senders.reduce((s, c) => s + c.lines.filter((l) => / ERR UNAVAILABLE/.test(l)).length, 0),
  };
}
