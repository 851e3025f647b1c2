import { isConnectionUnusable, isTransientDbError } from "./transient.ts";

const err = (code: string, message = "x") => Object.assign(new Error(message), { code });

test("a server that went read-only (25006) is retried, on a new connection", () => {
  const e = err("25006", "cannot execute INSERT in a read-only transaction");
  expect([isTransientDbError(e), isConnectionUnusable(e)]).toEqual([true, true]);
  // The rest of class 25 is a bug of the caller's, not an outage.
  expect(isTransientDbError(err("25P02", "current transaction is aborted"))).toBe(false);
});

test("a statement past its query timeout is retried, on a new connection", () => {
  const e = new Error("Query read timeout");
  expect([isTransientDbError(e), isConnectionUnusable(e)]).toEqual([true, true]);
});

test("a serialization failure or deadlock is retried on the same connection; bad input is neither", () => {
  for (const code of ["40001", "40P01"]) expect([code, isTransientDbError(err(code)), isConnectionUnusable(err(code))]).toEqual([code, true, false]);
  for (const code of ["23505", "22P02", "42601"]) expect([code, isTransientDbError(err(code)), isConnectionUnusable(err(code))]).toEqual([code, false, false]);
});

test("a cut connection or a server shutting down is both", () => {
  for (const e of [err("ECONNRESET"), err("57P01", "terminating connection due to administrator command"), err("08006"), new Error("Connection terminated unexpectedly")]) {
    expect([e.message, isTransientDbError(e), isConnectionUnusable(e)]).toEqual([e.message, true, true]);
  }
  expect(isConnectionUnusable(undefined)).toBe(false);
});

test("a prepared statement the connection lost is retried, on a new connection (which prepares it again)", () => {
  for (const e of [err("26000", 'prepared statement "router.batchView" does not exist'), err("0A000", "cached plan must not change result type")]) {
    expect([e.message, isTransientDbError(e), isConnectionUnusable(e)]).toEqual([e.message, true, true]);
  }
  // Another unsupported feature is the caller's bug, not the connection's.
  expect(isTransientDbError(err("0A000", "FOR UPDATE is not allowed with aggregate functions"))).toBe(false);
});
