/**
 * Which of the servers an `ERR FULL` offers to try first: the nearest, measured. The server
 * lists them by its own measure (its sync links' round trips); what matters to this client is its own round trip,
 * so each one is asked `/@live?` (askLive) and timed.
 */
import { askLive } from "./live.ts";
import { parseServerAddress } from "./address.ts";

export interface Probed {
  address: string;
  /** Round trip of `/@live?` -> `yes` in ms; undefined when it did not answer `yes`. */
  rttMs: number | undefined;
}

/**
 * The servers that answered, lowest round trip first. Round trips are compared in whole
 * milliseconds: below that, scheduling noise on the client decides, not distance, so the
 * server's own order (nearest first) stands. A server that did not answer `yes` is left out:
 * its gateway says `yes` only while its backend works, so it cannot log anyone in now.
 */
export function nearestFirst(probed: readonly Probed[]): Probed[] {
  return probed
    .map((p, i) => ({ p, i }))
    .filter(({ p }) => p.rttMs !== undefined && Number.isFinite(p.rttMs))
    .sort((a, b) => Math.floor(a.p.rttMs!) - Math.floor(b.p.rttMs!) || a.i - b.i)
    .map(({ p }) => p);
}

/** Times one `/@live?` (resent every resendMs) to address; undefined when no `yes` in time. */
export async function probeRtt(address: string, timeoutMs: number, resendMs: number): Promise<Probed> {
  const a = parseServerAddress(address);
  const t0 = performance.now();
  try {
    await askLive(a.host, a.port, timeoutMs, resendMs);
    return { address, rttMs: performance.now() - t0 };
  } catch {
    return { address, rttMs: undefined };
  }
}

/** Probes every address at once and orders them with nearestFirst. */
export async function rankByRtt(addresses: readonly string[], timeoutMs: number, resendMs: number): Promise<{ ranked: Probed[]; probed: Probed[] }> {
  const probed = await Promise.all(addresses.map((a) => probeRtt(a, timeoutMs, resendMs)));
  return { ranked: nearestFirst(probed), probed };
}
