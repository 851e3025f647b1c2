import { LeaseState } from "./lease.ts";

test("leadership lasts until the last successful attempt's start plus ttl, less a margin", () => {
  const s = new LeaseState(1000);
  expect(s.isLeader(0)).toBe(false);
  s.held(100);
  expect(s.isLeader(150)).toBe(true);
  expect(s.isLeader(1000)).toBe(false); // 100 + 1000 - margin 100
  expect(s.wantsRenewal(1050)).toBe(true);
  s.held(900);
  expect(s.isLeader(1700)).toBe(true);
});

test("losing the key ends leadership at once", () => {
  const s = new LeaseState(1000);
  s.held(0);
  s.lost();
  expect(s.isLeader(1)).toBe(false);
  expect(s.wantsRenewal(1)).toBe(false);
});

test("Redis unreachable: leadership runs out; after a whole ttl of failures alerting is allowed anyway", () => {
  const s = new LeaseState(1000);
  s.held(0);
  s.failed(300);
  expect(s.isLeader(500)).toBe(true);
  expect(s.isLeader(950)).toBe(false);
  expect(s.mayAlert(950)).toBe(false);
  expect(s.mayAlert(1300)).toBe(true);
  expect(s.degraded(1300)).toBe(true);
  // Redis answers again: back to the normal rules.
  s.lost();
  expect(s.mayAlert(1400)).toBe(false);
});
