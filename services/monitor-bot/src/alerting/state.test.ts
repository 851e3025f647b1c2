import { StatusTracker, ThresholdTracker } from "./state.ts";

const t = (s: number) => new Date(Date.UTC(2026, 10, 23, 10, 0, s));

describe("StatusTracker", () => {
  test("first seen healthy: up without an event; a failure: down once, since its time", () => {
    const st = new StatusTracker({ downAfter: 1, upAfter: 1 });
    expect(st.observe("x", true, t(0))).toBeUndefined();
    expect(st.observe("x", false, t(1), "refused")).toEqual({ component: "x", kind: "down", at: t(1), since: t(1), detail: "refused" });
    expect(st.observe("x", false, t(2))).toBeUndefined();
    expect(st.observe("x", false, t(3))).toBeUndefined();
    expect(st.down()).toEqual([{ component: "x", since: t(1), detail: "" }]);
    expect(st.observe("x", true, t(4))).toMatchObject({ kind: "up", at: t(4), since: t(1) });
    expect(st.observe("x", true, t(5))).toBeUndefined();
    expect(st.down()).toEqual([]);
  });

  test("first seen failing goes down with an event", () => {
    const st = new StatusTracker({ downAfter: 1, upAfter: 1 });
    expect(st.observe("x", false, t(0))).toMatchObject({ kind: "down", since: t(0) });
  });

  test("debounce: downAfter failures in a row, upAfter successes in a row; since is the first failure", () => {
    const st = new StatusTracker({ downAfter: 3, upAfter: 2 });
    st.observe("x", true, t(0));
    expect(st.observe("x", false, t(1))).toBeUndefined();
    expect(st.observe("x", false, t(2))).toBeUndefined();
    expect(st.observe("x", true, t(3))).toBeUndefined(); // streak broken
    expect(st.observe("x", false, t(4))).toBeUndefined();
    expect(st.observe("x", false, t(5))).toBeUndefined();
    expect(st.observe("x", false, t(6))).toMatchObject({ kind: "down", since: t(4), at: t(6) });
    expect(st.observe("x", true, t(7))).toBeUndefined();
    expect(st.observe("x", false, t(8))).toBeUndefined(); // still down, success streak reset
    expect(st.observe("x", true, t(9))).toBeUndefined();
    expect(st.observe("x", true, t(10))).toMatchObject({ kind: "up", since: t(4), at: t(10) });
  });

  test("seeded outage: no second down event; the first success closes it with the old since", () => {
    const st = new StatusTracker({ downAfter: 1, upAfter: 1 });
    st.seedDown("x", t(0), "old");
    expect(st.observe("x", false, t(5))).toBeUndefined();
    expect(st.observe("x", true, t(6))).toMatchObject({ kind: "up", since: t(0) });
  });

  test("components are independent; forget drops one", () => {
    const st = new StatusTracker({ downAfter: 1, upAfter: 1 });
    st.observe("a", false, t(2));
    st.observe("b", false, t(1));
    expect(st.down().map((d) => d.component)).toEqual(["b", "a"]);
    expect(st.forget("a")).toBe("down");
    expect(st.health("a")).toBe("unknown");
  });
});

describe("ThresholdTracker", () => {
  test("fires once per crossing, clears below high - hysteresis", () => {
    const th = new ThresholdTracker();
    const rule = { high: 90, hysteresis: 5 };
    const kinds = [80, 90, 95, 99, 89, 86, 85, 84.9, 50, 91, 91].map((v, i) => th.observe("cpu", v, rule, t(i))?.kind);
    expect(kinds).toEqual([undefined, "threshold", undefined, undefined, undefined, undefined, undefined, "clear", undefined, "threshold", undefined]);
  });
  test("clear carries when it went high", () => {
    const th = new ThresholdTracker();
    const rule = { high: 10, hysteresis: 0 };
    th.observe("x", 10, rule, t(1));
    expect(th.observe("x", 9, rule, t(5))).toMatchObject({ kind: "clear", since: t(1), at: t(5) });
  });
  test("threshold 0 fires on the first sample and never again", () => {
    const th = new ThresholdTracker();
    const rule = { high: 0, hysteresis: 0 };
    const events = [0, 3, 50, 0].map((v, i) => th.observe("x", v, rule, t(i))).filter(Boolean);
    expect(events).toHaveLength(1);
  });
  test("no rule or no value: nothing", () => {
    const th = new ThresholdTracker();
    expect(th.observe("x", 100, undefined, t(0))).toBeUndefined();
    expect(th.observe("x", null, { high: 1, hysteresis: 0 }, t(0))).toBeUndefined();
  });
});
