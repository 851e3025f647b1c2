import { PasswordQueue, type DropReason, type QueuedJob, type QueueLimits } from "./password-queue.ts";

/** A queue whose jobs finish only when the test says so, with a clock the test moves. */
function harness(limits: Partial<QueueLimits> = {}) {
  let now = 0;
  const started: string[] = [];
  const dropped: Array<[string, DropReason]> = [];
  const finishers = new Map<string, () => void>();
  const q = new PasswordQueue<QueuedJob>(
    { concurrency: 1, maxQueued: 100, maxWaitMs: 1000, ...limits },
    {
      now: () => now,
      run: (job) =>
        new Promise<void>((resolve) => {
          started.push(job.id);
          finishers.set(job.id, resolve);
        }),
      drop: (job, why) => dropped.push([job.id, why]),
    },
  );
  const push = (id: string, ip: string, endpoint = `${ip}:${id}`) => q.push({ id, ip, endpoint, at: now });
  const finish = async (id: string) => {
    const f = finishers.get(id);
    if (!f) throw new Error(`${id} is not running`);
    finishers.delete(id);
    f();
    // let the queue's then() run
    await new Promise((r) => setImmediate(r));
  };
  return { q, started, dropped, push, finish, tick: (ms: number) => (now += ms) };
}

test("at most `concurrency` jobs run; the next starts when one finishes", async () => {
  const h = harness({ concurrency: 3 });
  for (const id of ["a", "b", "c"]) h.push(id, "10.0.0.1");
  h.push("d", "10.0.0.2");
  h.push("e", "10.0.0.2");
  expect(h.started).toEqual(["a", "b", "d"]);
  expect(h.q.waitingJobs).toBe(2);
  await h.finish("a");
  expect(h.started).toEqual(["a", "b", "d", "c"]);
});

test("one IP never takes the last slot: a login from another IP starts at once, even behind a flood", async () => {
  const h = harness({ concurrency: 2 });
  for (let i = 0; i < 5; i++) h.push(`x${i}`, "127.0.0.3");
  expect(h.started).toEqual(["x0"]);
  h.push("owner", "127.0.0.1");
  expect(h.started).toEqual(["x0", "owner"]);
  // With concurrency 1 the one slot is shared in turns.
  const one = harness({ concurrency: 1 });
  one.push("y0", "127.0.0.3");
  one.push("y1", "127.0.0.3");
  expect(one.started).toEqual(["y0"]);
  await one.finish("y0");
  expect(one.started).toEqual(["y0", "y1"]);
});

test("IPs take turns: one login from another IP starts before a flood's next job", async () => {
  const h = harness();
  for (let i = 0; i < 10; i++) h.push(`x${i}`, "127.0.0.3");
  h.push("owner", "127.0.0.1");
  expect(h.started).toEqual(["x0"]);
  await h.finish("x0");
  expect(h.started).toEqual(["x0", "owner"]);
  await h.finish("owner");
  expect(h.started.at(-1)).toBe("x1");
});

test("jobs of one endpoint run one after another in arrival order, others of the IP go past", async () => {
  const h = harness({ concurrency: 3 });
  h.push("register", "10.0.0.1", "gw 10.0.0.1:5000");
  h.push("login", "10.0.0.1", "gw 10.0.0.1:5000");
  h.push("send", "10.0.0.1", "gw 10.0.0.1:5000");
  h.push("other", "10.0.0.1", "gw 10.0.0.1:6000");
  // login waits for register; other (another port) takes the second slot.
  expect(h.started).toEqual(["register", "other"]);
  expect(h.q.hasEndpoint("gw 10.0.0.1:5000")).toBe(true);
  await h.finish("other");
  expect(h.started).toEqual(["register", "other"]);
  await h.finish("register");
  expect(h.started).toEqual(["register", "other", "login"]);
  await h.finish("login");
  await h.finish("send");
  expect(h.started).toEqual(["register", "other", "login", "send"]);
  expect(h.q.hasEndpoint("gw 10.0.0.1:5000")).toBe(false);
});

test("a full queue pushes out the newest job of the IP holding most; that IP's own new job is refused", () => {
  const h = harness({ maxQueued: 4 });
  h.push("run", "9.9.9.9"); // running, not waiting
  for (let i = 0; i < 3; i++) h.push(`f${i}`, "127.0.0.3");
  h.push("b0", "127.0.0.2");
  expect(h.q.waitingJobs).toBe(4);
  // The flooder's fourth: its IP holds the most already, so the new job is the one dropped.
  h.push("f3", "127.0.0.3");
  expect(h.dropped).toEqual([["f3", "full"]]);
  // Someone else: the flooder's newest makes room.
  h.push("owner", "127.0.0.1");
  expect(h.dropped).toEqual([
    ["f3", "full"],
    ["f2", "full"],
  ]);
  expect(h.q.waitingJobs).toBe(4);
});

test("a job that has not started within maxWaitMs is dropped as expired", async () => {
  const h = harness({ maxWaitMs: 1000 });
  h.push("slow", "10.0.0.1");
  h.push("a", "10.0.0.2");
  h.tick(500);
  h.push("b", "10.0.0.3");
  h.tick(600);
  h.q.expire();
  expect(h.dropped).toEqual([["a", "expired"]]);
  await h.finish("slow");
  expect(h.started).toEqual(["slow", "b"]);
});

test("the same id twice is queued once; close drops the waiting and waits for the running", async () => {
  const h = harness();
  h.push("a", "10.0.0.1");
  h.push("b", "10.0.0.1");
  h.push("b", "10.0.0.1");
  expect(h.q.waitingJobs).toBe(1);
  let closed = false;
  const closing = h.q.close().then(() => (closed = true));
  expect(h.dropped).toEqual([["b", "closed"]]);
  await new Promise((r) => setImmediate(r));
  expect(closed).toBe(false);
  await h.finish("a");
  await closing;
  expect(closed).toBe(true);
  h.push("c", "10.0.0.1");
  expect(h.dropped.at(-1)).toEqual(["c", "closed"]);
  await h.q.close();
});
