import { activeSilences, covers, suppressedBy, suppressedSet, windowOccurrence, type MaintenanceWindow, type Silence, type Weekday } from "./suppression.ts";

const at = (iso: string) => new Date(iso);
// 2026-12-03 is a Thursday.
const NOW = at("2026-12-03T10:00:00Z");

const mute = (component: string, until: string): Silence => ({ component, kind: "mute", until: at(until), by: "Ani", at: at("2026-12-03T09:00:00Z") });
const ack = (component: string): Silence => ({ component, kind: "ack", until: null, by: "Budi", at: at("2026-12-03T09:30:00Z") });
const weekly = (day: Weekday, hhmm: string, durationMs: number, components = ["*"]): MaintenanceWindow => {
  const [h, m] = hhmm.split(":").map(Number);
  return { kind: "weekly", name: "backup", components, day, minuteOfDay: h! * 60 + m!, durationMs };
};

test("covers: ids, patterns and sub-ids", () => {
  expect(covers("host:web1", "host:web1")).toBe(true);
  expect(covers("host:web1", "host:web1/cpu")).toBe(true);
  expect(covers("host:web1", "host:web10")).toBe(false);
  expect(covers("http:router*", "http:router@10.0.0.5:9200")).toBe(true);
  expect(covers("service:web1/*", "service:web1/nginx")).toBe(true);
  expect(covers("service:web1/*", "service:web2/nginx")).toBe(false);
  expect(covers("*", "messaging:msg1/delay")).toBe(true);
});

describe("windowOccurrence", () => {
  test("one-off: from inclusive, to exclusive", () => {
    const w: MaintenanceWindow = { kind: "once", name: undefined, components: ["*"], from: at("2026-12-03T09:00:00Z"), to: at("2026-12-03T10:00:00Z") };
    expect(windowOccurrence(w, at("2026-12-03T09:00:00Z"))).toEqual({ from: w.from, to: w.to });
    expect(windowOccurrence(w, at("2026-12-03T09:59:59.999Z"))).toBeDefined();
    expect(windowOccurrence(w, NOW)).toBeUndefined();
    expect(windowOccurrence(w, at("2026-12-03T08:59:59Z"))).toBeUndefined();
  });
  test("weekly: this week's occurrence, in UTC", () => {
    const w = weekly("thu", "09:30", 3_600_000);
    expect(windowOccurrence(w, NOW)).toEqual({ from: at("2026-12-03T09:30:00Z"), to: at("2026-12-03T10:30:00Z") });
    expect(windowOccurrence(w, at("2026-12-03T10:30:00Z"))).toBeUndefined();
    expect(windowOccurrence(w, at("2026-12-03T09:29:00Z"))).toBeUndefined();
    // A week later, same time.
    expect(windowOccurrence(w, at("2026-12-10T10:00:00Z"))).toEqual({ from: at("2026-12-10T09:30:00Z"), to: at("2026-12-10T10:30:00Z") });
  });
  test("weekly across midnight and across the week's end", () => {
    // Sunday 23:00 for 3 h covers Monday 01:00.
    const w = weekly("sun", "23:00", 3 * 3_600_000);
    expect(windowOccurrence(w, at("2026-12-07T01:00:00Z"))).toEqual({ from: at("2026-12-06T23:00:00Z"), to: at("2026-12-07T02:00:00Z") });
    expect(windowOccurrence(w, at("2026-12-07T02:00:00Z"))).toBeUndefined();
    // Monday 00:00, a whole week long: always in effect.
    expect(windowOccurrence(weekly("mon", "00:00", 7 * 86_400_000), NOW)).toBeDefined();
  });
});

describe("activeSilences and suppressedBy", () => {
  test("an expired mute is gone; an ack stays; a window shows its end", () => {
    const active = activeSilences(NOW, [mute("host:web1", "2026-12-03T09:59:00Z"), mute("host:web2", "2026-12-03T11:00:00Z"), ack("http:router@10.0.0.5:9200")], [weekly("thu", "09:30", 3_600_000, ["postgres:*"])]);
    expect(active).toEqual([
      { component: "host:web2", kind: "mute", until: at("2026-12-03T11:00:00Z"), by: "Ani" },
      { component: "http:router@10.0.0.5:9200", kind: "ack", until: null, by: "Budi" },
      { component: "postgres:*", kind: "maintenance", until: at("2026-12-03T10:30:00Z"), by: "maintenance backup" },
    ]);
    expect(suppressedBy("host:web1", active)).toBeUndefined();
    expect(suppressedBy("host:web2/cpu", active)?.kind).toBe("mute");
    expect(suppressedBy("http:router@10.0.0.5:9200", active)?.kind).toBe("ack");
    expect(suppressedBy("http:router@10.0.0.6:9200", active)).toBeUndefined();
    expect(suppressedBy("postgres:pg@10.0.0.9:5432", active)).toEqual({ component: "postgres:*", kind: "maintenance", until: at("2026-12-03T10:30:00Z"), by: "maintenance backup" });
  });
  test("a mute wins over an ack and a window for the reason shown", () => {
    const active = activeSilences(NOW, [ack("host:web1"), mute("host:*", "2026-12-03T12:00:00Z")], [weekly("thu", "09:00", 2 * 3_600_000)]);
    expect(suppressedBy("host:web1", active)?.kind).toBe("mute");
    expect(suppressedBy("service:web1/nginx", active)?.kind).toBe("maintenance");
  });
  test("suppressedSet", () => {
    const active = activeSilences(NOW, [mute("service:*", "2026-12-03T12:00:00Z")], []);
    expect([...suppressedSet(["host:a", "service:a/nginx", "service:b/x"], active)]).toEqual(["service:a/nginx", "service:b/x"]);
    expect(suppressedSet(["host:a"], [])).toEqual(new Set());
  });
});
