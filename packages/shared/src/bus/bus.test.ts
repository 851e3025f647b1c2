/**
 * One suite, two backends: the in-process MemoryBus and RedisBus against a real Redis
 * (REDIS_URL or redis://127.0.0.1:6379). Every Redis test uses its own random key prefix and
 * deletes its keys afterwards.
 */
import { createHook } from "node:async_hooks";
import { randomUUID } from "node:crypto";
import { Redis } from "ioredis";
import type { Bus, BusEntry, Consumer, ConsumerOptions, BatchHandler } from "./bus.ts";
import { MemoryBus } from "./memory-bus.ts";
import { RedisBus } from "./redis-bus.ts";
import { createLogger } from "../observability/log.ts";

const REDIS_URL = process.env.REDIS_URL ?? "redis://127.0.0.1:6379";
const logger = createLogger("bus-test", "silent");

class TransientError extends Error {}

interface Harness {
  bus: Bus;
  /** Full key of the stream under test. */
  stream: string;
  /** Entries currently in the stream. */
  length(): Promise<number>;
  /** Entries read by group "g" and not yet acknowledged. */
  pending(): Promise<number>;
  /** What was moved to the dead-letter stream. */
  dead(): Promise<Array<{ id: string; payload: string; reason: string }>>;
  cleanup(): Promise<void>;
}

async function memoryHarness(): Promise<Harness> {
  const bus = new MemoryBus(`t${randomUUID()}:`);
  const stream = bus.key("work");
  return {
    bus,
    stream,
    length: async () => bus.stream(stream).entries.length,
    pending: async () => bus.stream(stream).groups.get("g")?.pending.size ?? 0,
    dead: async () => bus.stream(stream).dead.map(({ id, payload, reason }) => ({ id, payload, reason })),
    cleanup: async () => bus.close(),
  };
}

async function redisHarness(): Promise<Harness> {
  const prefix = `pesan-test:${randomUUID()}:`;
  const bus = new RedisBus(REDIS_URL, prefix);
  const admin = new Redis(REDIS_URL, { maxRetriesPerRequest: 1 });
  const stream = bus.key("work");
  return {
    bus,
    stream,
    length: async () => admin.xlen(stream),
    pending: async () => {
      try {
        const r = (await admin.xpending(stream, "g")) as [number, ...unknown[]];
        return Number(r[0]);
      } catch {
        return 0; // no group yet
      }
    },
    dead: async () => {
      const rows = (await admin.xrange(`${stream}:dead`, "-", "+")) as Array<[string, string[]]>;
      return rows.map(([, f]) => {
        const m = new Map<string, string>();
        for (let i = 0; i + 1 < f.length; i += 2) m.set(f[i]!, f[i + 1]!);
        return { id: m.get("id") ?? "", payload: m.get("p") ?? "", reason: m.get("reason") ?? "" };
      });
    },
    cleanup: async () => {
      await bus.close();
      const keys: string[] = [];
      let cursor = "0";
      do {
        const [next, batch] = await admin.scan(cursor, "MATCH", `${prefix}*`, "COUNT", 1000);
        cursor = next;
        keys.push(...batch);
      } while (cursor !== "0");
      if (keys.length > 0) await admin.del(...keys);
      const left = await admin.keys(`${prefix}*`);
      admin.disconnect();
      if (left.length > 0) throw new Error(`keys left behind: ${left.join(", ")}`);
    },
  };
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

async function waitFor(what: string, cond: () => boolean | Promise<boolean>, timeoutMs = 5000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

function deferred<T = void>(): { promise: Promise<T>; resolve: (v: T) => void; reject: (e: unknown) => void } {
  let resolve!: (v: T) => void;
  let reject!: (e: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

const payloads = (n: number, p = "m") => Array.from({ length: n }, (_, i) => `${p}${i}`);

describe.each<[string, () => Promise<Harness>]>([
  ["MemoryBus", memoryHarness],
  ["RedisBus", redisHarness],
])("%s", (_name, makeHarness) => {
  let h: Harness;
  const consumers: Consumer[] = [];

  beforeEach(async () => {
    h = await makeHarness();
  });

  afterEach(async () => {
    await Promise.all(consumers.splice(0).map((c) => c.close()));
    await h.cleanup();
  });

  function opts(over: Partial<ConsumerOptions> = {}): ConsumerOptions {
    return {
      stream: h.stream,
      group: "g",
      consumer: "c1",
      count: 10,
      blockMs: 100,
      claimIdleMs: 60_000,
      deleteOnAck: false,
      isTransient: (e) => e instanceof TransientError,
      ...over,
    };
  }

  async function start(o: ConsumerOptions, handler: BatchHandler): Promise<Consumer> {
    const c = h.bus.consumer(o, handler, logger);
    consumers.push(c);
    await c.start();
    return c;
  }

  const publish = (items: string[]) => h.bus.publish(items.map((payload) => ({ stream: h.stream, payload })));

  test("publish then consume delivers every payload once, in order", async () => {
    const first = payloads(120, "a");
    const later = payloads(80, "b");
    await publish(first);
    const got: string[] = [];
    const batches: number[] = [];
    await start(opts({ count: 16 }), async (entries) => {
      batches.push(entries.length);
      got.push(...entries.map((e) => e.payload));
    });
    await waitFor("the first entries", () => got.length >= first.length);
    // published while the consumer waits in a blocking read
    await publish(later.slice(0, 40));
    await publish(later.slice(40));
    await waitFor("all entries", () => got.length >= first.length + later.length);
    await sleep(150);
    expect(got).toEqual([...first, ...later]);
    expect(Math.max(...batches)).toBeLessThanOrEqual(16);
    expect(await h.pending()).toBe(0);
  });

  test("payloads are kept byte for byte", async () => {
    const odd = ["", " ", "line\nbreak", "😀 ünïcode", "x".repeat(100_000), '{"json":true}'];
    await publish(odd);
    const got: string[] = [];
    await start(opts(), async (entries) => {
      got.push(...entries.map((e) => e.payload));
    });
    await waitFor("all entries", () => got.length >= odd.length);
    expect(got).toEqual(odd);
  });

  test("entry ids are unique and increasing", async () => {
    const ids: string[] = [];
    await publish(payloads(300));
    await start(opts({ count: 50 }), async (entries) => {
      ids.push(...entries.map((e) => e.id));
    });
    await waitFor("all entries", () => ids.length >= 300);
    expect(new Set(ids).size).toBe(300);
    const key = (id: string) => id.split("-").map(Number) as [number, number];
    for (let i = 1; i < ids.length; i++) {
      const [a, b] = [key(ids[i - 1]!), key(ids[i]!)];
      expect(a[0] < b[0] || (a[0] === b[0] && a[1] < b[1])).toBe(true);
    }
  });

  test("two consumers of one group split the entries with no duplicate", async () => {
    const byConsumer: Record<string, string[]> = { c1: [], c2: [] };
    const handler = (name: string) => async (entries: BusEntry[]) => {
      byConsumer[name]!.push(...entries.map((e) => e.payload));
      await sleep(5);
    };
    await start(opts({ consumer: "c1", count: 5 }), handler("c1"));
    await start(opts({ consumer: "c2", count: 5 }), handler("c2"));
    const all = payloads(200);
    await publish(all);
    await waitFor("all entries", () => byConsumer.c1!.length + byConsumer.c2!.length >= all.length);
    await sleep(150);
    const seen = [...byConsumer.c1!, ...byConsumer.c2!];
    expect(seen).toHaveLength(all.length);
    expect(new Set(seen).size).toBe(all.length);
    expect([...seen].sort()).toEqual([...all].sort());
    expect(byConsumer.c1!.length).toBeGreaterThan(0);
    expect(byConsumer.c2!.length).toBeGreaterThan(0);
    // each consumer still sees its share in stream order
    for (const part of [byConsumer.c1!, byConsumer.c2!]) {
      const idx = part.map((p) => all.indexOf(p));
      expect(idx).toEqual([...idx].sort((x, y) => x - y));
    }
  });

  test("two groups each get every entry", async () => {
    const g1: string[] = [];
    const g2: string[] = [];
    await start(opts({ group: "g" }), async (e) => void g1.push(...e.map((x) => x.payload)));
    await start(opts({ group: "other" }), async (e) => void g2.push(...e.map((x) => x.payload)));
    await publish(payloads(30));
    await waitFor("both groups", () => g1.length >= 30 && g2.length >= 30);
    expect(g1).toEqual(payloads(30));
    expect(g2).toEqual(payloads(30));
  });

  test("entries are acknowledged only after the handler resolved", async () => {
    const gate = deferred();
    const got: string[] = [];
    await publish(payloads(5));
    let calls = 0;
    await start(opts(), async (entries) => {
      calls++;
      await gate.promise;
      got.push(...entries.map((e) => e.payload));
    });
    await waitFor("the handler to be called", () => calls > 0);
    await sleep(100);
    expect(await h.pending()).toBe(5);
    gate.resolve();
    await waitFor("the acknowledgement", async () => (await h.pending()) === 0);
    expect(got).toEqual(payloads(5));
    expect(calls).toBe(1);
  });

  test("an entry the handler holds stays pending until its work is done; the next batches go on meanwhile", async () => {
    const work = deferred();
    const failed = deferred();
    const got: string[] = [];
    await publish(payloads(3));
    await start(opts({ count: 3 }), async (entries) => {
      got.push(...entries.map((e) => e.payload));
      const held = entries.filter((e) => e.payload === "m1").map((e) => ({ id: e.id, done: work.promise }));
      const lost = entries.filter((e) => e.payload === "m2").map((e) => ({ id: e.id, done: failed.promise }));
      return { held: [...held, ...lost] };
    });
    await waitFor("the first batch", () => got.length >= 3);
    await waitFor("the free entry acknowledged", async () => (await h.pending()) === 2);
    await publish(["later"]);
    await waitFor("a later batch while two are held", () => got.includes("later"));
    await waitFor("its acknowledgement", async () => (await h.pending()) === 2);
    work.resolve();
    failed.reject(new Error("the password job failed"));
    await waitFor("the held entry acknowledged", async () => (await h.pending()) === 1);
    // The failed one stays pending, to be taken over after claimIdleMs.
    await sleep(100);
    expect(await h.pending()).toBe(1);
  });

  test("a transient failure retries the same batch and loses nothing", async () => {
    await publish(payloads(8));
    const calls: string[][] = [];
    const got: string[] = [];
    await start(opts({ count: 8 }), async (entries) => {
      calls.push(entries.map((e) => e.id));
      if (calls.length <= 3) throw new TransientError("database is down");
      got.push(...entries.map((e) => e.payload));
    });
    await waitFor("success after retries", () => got.length >= 8);
    await sleep(100);
    expect(calls.length).toBe(4);
    expect(calls[0]).toHaveLength(8);
    for (const c of calls) expect(c).toEqual(calls[0]);
    expect(got).toEqual(payloads(8));
    expect(await h.pending()).toBe(0);
    expect(await h.dead()).toEqual([]);
  });

  test("entries stay pending while a transient failure lasts", async () => {
    await publish(payloads(3));
    let calls = 0;
    await start(opts(), async () => {
      calls++;
      throw new TransientError("still down");
    });
    await waitFor("a few retries", () => calls >= 3);
    expect(await h.pending()).toBe(3);
    expect(await h.dead()).toEqual([]);
  });

  test("a bad entry is dead-lettered alone; the rest of its batch is processed", async () => {
    const items = ["ok0", "ok1", "poison", "ok3", "ok4"];
    await publish(items);
    const calls: string[][] = [];
    const done: string[] = [];
    const ids = new Map<string, string>();
    await start(opts({ count: 10 }), async (entries) => {
      calls.push(entries.map((e) => e.payload));
      for (const e of entries) ids.set(e.payload, e.id);
      if (entries.some((e) => e.payload === "poison")) throw new Error("cannot parse poison");
      done.push(...entries.map((e) => e.payload));
    });
    await waitFor("the dead letter", async () => (await h.dead()).length > 0 && done.length >= 4);
    await sleep(100);
    expect(calls[0]).toEqual(items);
    expect(done).toEqual(["ok0", "ok1", "ok3", "ok4"]);
    expect(await h.dead()).toEqual([{ id: ids.get("poison"), payload: "poison", reason: "cannot parse poison" }]);
    expect(await h.pending()).toBe(0);
    // the stream goes on
    await publish(["after"]);
    await waitFor("the next entry", () => done.includes("after"));
  });

  test("several bad entries in one batch are each dead-lettered", async () => {
    const items = ["bad0", "ok1", "bad2", "bad3", "ok4", "ok5"];
    await publish(items);
    const done: string[] = [];
    await start(opts({ count: 6 }), async (entries) => {
      const bad = entries.find((e) => e.payload.startsWith("bad"));
      if (bad) throw new Error(`bad ${bad.payload}`);
      done.push(...entries.map((e) => e.payload));
    });
    await waitFor("all handled", async () => done.length >= 3 && (await h.dead()).length >= 3);
    await sleep(100);
    expect(done).toEqual(["ok1", "ok4", "ok5"]);
    const dead = await h.dead();
    expect(dead.map((d) => d.payload)).toEqual(["bad0", "bad2", "bad3"]);
    expect(dead.map((d) => d.reason)).toEqual(["bad bad0", "bad bad2", "bad bad3"]);
    expect(await h.pending()).toBe(0);
  });

  test("a consumer that died holding entries: another one takes them over after claimIdleMs", async () => {
    const gate = deferred();
    const heldByA: BusEntry[] = [];
    const a = h.bus.consumer(opts({ consumer: "a", count: 10 }), async (entries) => {
      heldByA.push(...entries);
      await gate.promise;
      throw new Error("consumer a must never get this far");
    }, logger);
    await a.start();
    await publish(payloads(6));
    await waitFor("a to read", () => heldByA.length === 6);
    // "a" stops (as when its process is killed mid-batch): it never acknowledges.
    const aClosed = a.close();

    const gotByB: BusEntry[] = [];
    const t0 = Date.now();
    await start(opts({ consumer: "b", claimIdleMs: 300, blockMs: 50 }), async (entries) => {
      gotByB.push(...entries);
    });
    await waitFor("b to take over", () => gotByB.length >= 6);
    // not before the entries were idle for claimIdleMs
    expect(Date.now() - t0).toBeGreaterThanOrEqual(200);
    expect(gotByB.map((e) => e.id)).toEqual(heldByA.map((e) => e.id));
    expect(gotByB.map((e) => e.payload)).toEqual(payloads(6));
    await waitFor("b's acknowledgement", async () => (await h.pending()) === 0);

    // new entries still flow to b
    await publish(["fresh"]);
    await waitFor("b to read new entries", () => gotByB.some((e) => e.payload === "fresh"));

    // let "a" finish dying without acknowledging anything
    gate.reject(new TransientError("a is gone"));
    await aClosed;
    expect(await h.dead()).toEqual([]);
    expect(gotByB).toHaveLength(7);
  });

  test("entries are not taken over before claimIdleMs", async () => {
    const gate = deferred();
    let heldByA = 0;
    const a = h.bus.consumer(opts({ consumer: "a" }), async (entries) => {
      heldByA += entries.length;
      await gate.promise;
    }, logger);
    await a.start();
    await publish(payloads(3));
    await waitFor("a to read", () => heldByA === 3);
    const gotByB: BusEntry[] = [];
    await start(opts({ consumer: "b", claimIdleMs: 60_000, blockMs: 50 }), async (entries) => {
      gotByB.push(...entries);
    });
    await sleep(400);
    expect(gotByB).toEqual([]);
    gate.resolve();
    await a.close();
    await waitFor("a's acknowledgement", async () => (await h.pending()) === 0);
    expect(gotByB).toEqual([]);
  });

  test("deleteOnAck leaves the stream empty", async () => {
    await publish(payloads(40));
    await publish(["poison"]);
    let n = 0;
    await start(opts({ deleteOnAck: true, count: 7 }), async (entries) => {
      if (entries.some((e) => e.payload === "poison")) throw new Error("poison");
      n += entries.length;
    });
    await waitFor("processing", async () => n >= 40 && (await h.dead()).length === 1);
    await waitFor("an empty stream", async () => (await h.length()) === 0);
    expect(await h.pending()).toBe(0);
  });

  test("without deleteOnAck the processed entries stay in the stream", async () => {
    await publish(payloads(40));
    let n = 0;
    await start(opts({ count: 7 }), async (entries) => {
      n += entries.length;
    });
    await waitFor("processing", () => n >= 40);
    await waitFor("acknowledgement", async () => (await h.pending()) === 0);
    expect(await h.length()).toBe(40);
  });

  test("maxLen caps the stream (approximately)", async () => {
    for (let i = 0; i < 5; i++) {
      await h.bus.publish(payloads(200, `r${i}-`).map((payload) => ({ stream: h.stream, payload, maxLen: 100 })));
    }
    const len = await h.length();
    expect(len).toBeGreaterThanOrEqual(100);
    expect(len).toBeLessThan(1000);
  });

  test("close() returns promptly while blocked in a read", async () => {
    let got = 0;
    const c = h.bus.consumer(opts({ blockMs: 5000 }), async (e) => void (got += e.length), logger);
    await c.start();
    await sleep(200); // now blocked in the read
    const t0 = Date.now();
    await c.close();
    expect(Date.now() - t0).toBeLessThan(1000);
    // and a closed consumer reads no more
    await publish(["late"]);
    await sleep(200);
    expect(got).toBe(0);
  });

  test("close() returns promptly while backing off after a failure", async () => {
    await publish(payloads(1));
    let calls = 0;
    const c = h.bus.consumer(opts({ blockMs: 5000 }), async () => {
      calls++;
      throw new TransientError("down");
    }, logger);
    await c.start();
    await waitFor("several failures", () => calls >= 5, 10_000); // backoff is now >= 800 ms
    const t0 = Date.now();
    await c.close();
    expect(Date.now() - t0).toBeLessThan(500);
  });

  /**
   * Sockets of this process, and timers armed by the bus or by ioredis that are still pending:
   * what would keep a service from exiting after it closed everything.
   */
  function trackResources(): { sockets: () => number; busTimers: () => string[]; stop: () => void } {
    const live = new Map<number, string>();
    const hook = createHook({
      init(id, type) {
        if (type !== "Timeout") return;
        const limit = Error.stackTraceLimit;
        Error.stackTraceLimit = 40;
        const stack = new Error().stack ?? "";
        Error.stackTraceLimit = limit;
        if (/ioredis|src\/bus\/(?!bus\.test)/.test(stack)) live.set(id, stack);
      },
      destroy(id) {
        live.delete(id);
      },
    }).enable();
    return {
      sockets: () => process.getActiveResourcesInfo().filter((x) => x === "TCPSocketWrap").length,
      busTimers: () => [...live.values()],
      stop: () => hook.disable(),
    };
  }

  test("close() releases every connection and timer, also for a consumer never started", async () => {
    await waitFor("ping", () => h.bus.ping().then(() => true, () => false));
    const res = trackResources();
    try {
      await sleep(100);
      const sockets = res.sockets();
      const started = h.bus.consumer(opts({ blockMs: 5000 }), async () => undefined, logger);
      await started.start();
      const idle = h.bus.consumer(opts({ consumer: "c2" }), async () => undefined, logger);
      await sleep(200);
      await started.close();
      await started.close(); // twice is harmless
      await idle.close();
      await idle.start(); // a closed consumer does not come back
      await sleep(300);
      expect(res.sockets()).toBe(sockets);
      expect(res.busTimers()).toEqual([]);
      await publish(["after close"]);
      await sleep(100);
      expect(await h.pending()).toBe(0);
    } finally {
      res.stop();
    }
  });

  test("start() twice runs one loop", async () => {
    const seen: string[] = [];
    const c = h.bus.consumer(opts({ count: 1 }), async (e) => void seen.push(...e.map((x) => x.payload)), logger);
    consumers.push(c);
    await Promise.all([c.start(), c.start()]);
    await c.start();
    await publish(payloads(20));
    await waitFor("all entries", () => seen.length >= 20);
    await sleep(150);
    expect(seen).toEqual(payloads(20));
  });

  test("publish of nothing is a no-op; ping works once connected", async () => {
    await h.bus.publish([]);
    await waitFor("ping", () => h.bus.ping().then(() => true, () => false));
    expect(await h.length()).toBe(0);
    expect(h.bus.key("x").endsWith("x")).toBe(true);
  });
});
