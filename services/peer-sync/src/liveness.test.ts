import { INITIAL, Liveness, onFailure, onSuccess } from "./liveness.ts";

test("UNKNOWN until an answer or N failures in a row", () => {
  expect(onSuccess(INITIAL)).toEqual({ state: "UP", failures: 0, changedFrom: "UNKNOWN" });
  expect(onFailure(INITIAL, 2)).toEqual({ state: "UNKNOWN", failures: 1, changedFrom: undefined });
  expect(onFailure({ state: "UNKNOWN", failures: 1 }, 2)).toEqual({ state: "DOWN", failures: 2, changedFrom: "UNKNOWN" });
});

test("UP survives N-1 failures; the Nth makes it DOWN; one answer brings it back", () => {
  const l = new Liveness(3);
  expect(l.success().changedFrom).toBe("UNKNOWN");
  expect(l.failure()).toEqual({ state: "UP", failures: 1, changedFrom: undefined });
  expect(l.failure()).toEqual({ state: "UP", failures: 2, changedFrom: undefined });
  expect(l.failure()).toEqual({ state: "DOWN", failures: 3, changedFrom: "UP" });
  expect(l.failure()).toEqual({ state: "DOWN", failures: 4, changedFrom: undefined });
  expect(l.success()).toEqual({ state: "UP", failures: 0, changedFrom: "DOWN" });
  expect(l.success().changedFrom).toBeUndefined();
});

test("an answer between failures resets the count", () => {
  const l = new Liveness(2);
  l.success();
  l.failure();
  l.success();
  expect(l.failure().state).toBe("UP");
  expect(l.failure().state).toBe("DOWN");
});

test("N = 1: the first failure is DOWN", () => {
  const l = new Liveness(1);
  expect(l.failure()).toEqual({ state: "DOWN", failures: 1, changedFrom: "UNKNOWN" });
});
