/**
 * Errors that say "the database (or the network to it) is away", as opposed to "this input is
 * bad": the first kind is retried until it comes back, the second is never retried blindly.
 */
const TRANSIENT_NODE_CODES = new Set(["ECONNREFUSED", "ECONNRESET", "EPIPE", "ETIMEDOUT", "ENOTFOUND", "EAI_AGAIN", "EHOSTUNREACH"]);

export function isTransientDbError(err: unknown): boolean {
  if (typeof err !== "object" || err === null) return false;
  const code = String((err as { code?: unknown }).code ?? "");
  if (TRANSIENT_NODE_CODES.has(code)) return true;
  // SQLSTATE classes: 08 connection exception, 53 insufficient resources, 57 operator
  // intervention (shutdown, crash recovery), 40 rollback (serialization, deadlock).
  if (/^(08|53|57|40)[0-9A-Z]{3}$/.test(code)) return true;
  const msg = String((err as { message?: unknown }).message ?? "");
  return /Connection terminated|timeout exceeded when trying to connect|Client has encountered a connection error|connect ECONNREFUSED|Connection is closed/i.test(msg);
}
