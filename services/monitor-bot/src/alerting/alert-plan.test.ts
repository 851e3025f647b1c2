import { planAlerts, type AlertRecord } from "./alert-plan.ts";

const T0 = Date.parse("2026-11-25T12:00:00.000Z");
const I = 10_000;
const down = (component: string, sinceMs: number, detail = "refused") => ({ component, since: new Date(sinceMs), detail });
const none = new Map<string, Date>();

test("a new outage is alerted at once, then once per interval", () => {
  let p = planAlerts(new Map(), [down("http:web", T0)], none, T0 + 50, I);
  expect(p.reminders).toEqual([{ component: "http:web", since: new Date(T0), detail: "refused", count: 1 }]);
  expect(p.nextDueAt).toBe(T0 + 50 + I);
  const sent: number[] = [T0 + 50];
  for (let t = T0 + 1000; t <= T0 + 45_000; t += 1000) {
    p = planAlerts(p.records, [down("http:web", T0)], none, t, I);
    if (p.reminders.length > 0) sent.push(t);
  }
  expect(sent.map((t) => t - T0)).toEqual([50, 10_000, 20_000, 30_000, 40_000]);
  expect(p.records.get("http:web")!.count).toBe(5);
});

test("a tick a little early still counts (timers jitter), a tick well before does not", () => {
  const rec = new Map<string, AlertRecord>([["c", { since: T0, lastAt: T0, count: 1 }]]);
  expect(planAlerts(rec, [down("c", T0)], none, T0 + I - 300, I).reminders).toHaveLength(1);
  expect(planAlerts(rec, [down("c", T0)], none, T0 + I - 1000, I).reminders).toHaveLength(0);
});

test("recovery: one message with the downtime from the up event, then the record is gone", () => {
  const rec = new Map<string, AlertRecord>([["c", { since: T0, lastAt: T0 + 20_000, count: 3 }]]);
  const p = planAlerts(rec, [], new Map([["c", new Date(T0 + 25_000)]]), T0 + 25_100, I);
  expect(p.recoveries).toEqual([{ component: "c", since: new Date(T0), at: new Date(T0 + 25_000) }]);
  expect(p.removed).toEqual(["c"]);
  expect(p.records.size).toBe(0);
  expect(p.nextDueAt).toBeUndefined();
  expect(planAlerts(p.records, [], none, T0 + 30_000, I).recoveries).toEqual([]);
});

test("no record, no recovery: a blip never alerted about stays quiet", () => {
  expect(planAlerts(new Map(), [], new Map([["c", new Date(T0)]]), T0, I).recoveries).toEqual([]);
});

test("a successor's records keep the cadence and the earliest since, whatever its own probes saw", () => {
  const shared = new Map<string, AlertRecord>([["c", { since: T0, lastAt: T0 + 30_000, count: 4 }]]);
  const early = planAlerts(shared, [down("c", T0 + 2000)], none, T0 + 33_000, I);
  expect(early.reminders).toEqual([]);
  expect(early.recoveries).toEqual([]);
  const due = planAlerts(shared, [down("c", T0 + 2000)], none, T0 + 40_000, I);
  expect(due.reminders).toEqual([{ component: "c", since: new Date(T0), detail: "refused", count: 5 }]);
});

test("several components: each on its own cadence; changed holds only what to store", () => {
  const rec = new Map<string, AlertRecord>([["a", { since: T0, lastAt: T0, count: 1 }]]);
  const p = planAlerts(rec, [down("a", T0), down("b", T0 + 4000)], none, T0 + 5000, I);
  expect(p.reminders.map((r) => r.component)).toEqual(["b"]);
  expect([...p.changed.keys()]).toEqual(["b"]);
  expect(p.nextDueAt).toBe(T0 + I);
});

describe("suppressed components", () => {
  const held = new Set(["c"]);
  test("a suppressed outage is not alerted and gets no record", () => {
    const p = planAlerts(new Map(), [down("c", T0)], none, T0, I, held);
    expect(p.reminders).toEqual([]);
    expect(p.records.size).toBe(0);
    expect(p.nextDueAt).toBeUndefined();
  });
  test("a record kept through the silence: no reminder, no recovery, no busy schedule; due at once when it ends", () => {
    const rec = new Map<string, AlertRecord>([["c", { since: T0, lastAt: T0, count: 2 }]]);
    const p = planAlerts(rec, [down("c", T0), down("d", T0 + 1000)], none, T0 + 5 * I, I, held);
    expect(p.reminders.map((r) => r.component)).toEqual(["d"]);
    expect(p.recoveries).toEqual([]);
    expect(p.records.get("c")).toEqual({ since: T0, lastAt: T0, count: 2 });
    // Only d's reminder counts: c's is overdue by design.
    expect(p.nextDueAt).toBe(T0 + 6 * I);
    const after = planAlerts(p.records, [down("c", T0), down("d", T0 + 1000)], none, T0 + 5 * I + 10, I);
    expect(after.reminders.map((r) => [r.component, r.count])).toEqual([["c", 3]]);
  });
  test("a suppressed component that recovers is announced when members had been told", () => {
    const rec = new Map<string, AlertRecord>([["c", { since: T0, lastAt: T0, count: 1 }]]);
    const p = planAlerts(rec, [], new Map([["c", new Date(T0 + 3000)]]), T0 + 3100, I, held);
    expect(p.recoveries).toEqual([{ component: "c", since: new Date(T0), at: new Date(T0 + 3000) }]);
  });
});
