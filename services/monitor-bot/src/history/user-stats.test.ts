import { periodStarts } from "./user-stats.ts";

const iso = (d: Date) => d.toISOString();

describe("periodStarts (UTC, weeks start on Monday)", () => {
  test("a Wednesday afternoon", () => {
    const p = periodStarts(new Date("2026-11-25T15:30:00.000Z"));
    expect(iso(p.today)).toBe("2026-11-25T00:00:00.000Z");
    expect(iso(p.yesterday)).toBe("2026-11-24T00:00:00.000Z");
    expect(iso(p.week)).toBe("2026-11-23T00:00:00.000Z");
    expect(iso(p.month)).toBe("2026-11-01T00:00:00.000Z");
  });
  test("a Sunday belongs to the week that began the Monday before", () => {
    expect(iso(periodStarts(new Date("2026-11-29T23:59:59.999Z")).week)).toBe("2026-11-23T00:00:00.000Z");
  });
  test("a Monday starts its own week; midnight is today", () => {
    const p = periodStarts(new Date("2026-11-30T00:00:00.000Z"));
    expect(iso(p.week)).toBe("2026-11-30T00:00:00.000Z");
    expect(iso(p.today)).toBe("2026-11-30T00:00:00.000Z");
  });
  test("the 1st of a month, across a year and a leap day", () => {
    const p = periodStarts(new Date("2027-01-01T08:00:00.000Z"));
    expect(iso(p.month)).toBe("2027-01-01T00:00:00.000Z");
    expect(iso(p.yesterday)).toBe("2026-12-31T00:00:00.000Z");
    expect(iso(p.week)).toBe("2026-12-28T00:00:00.000Z");
    expect(iso(periodStarts(new Date("2028-03-01T01:00:00.000Z")).yesterday)).toBe("2028-02-29T00:00:00.000Z");
  });
  test("a local time zone does not matter: only the instant", () => {
    // 2026-11-25 23:30 in UTC+7 is still 16:30 UTC the same day.
    expect(iso(periodStarts(new Date("2026-11-25T23:30:00+07:00")).today)).toBe("2026-11-25T00:00:00.000Z");
  });
});
