/**
 * The one rule for "nearest first" (SERVERS, ERR FULL): this cluster itself first (distance 0),
 * then the servers peer-sync measured, by their round trip (`rtt_ms`, the smoothed liveness
 * round trip of the sync link, see services/peer-sync/src/rtt.ts) in bands of RTT_BAND_MS,
 * then those never measured. Within a band, and among the unmeasured, the configured order
 * (proximity: the position in PEERS) decides, then the name.
 *
 * The band is why two peers a few ms apart keep the operator's order instead of swapping with
 * every wobble: a user does not notice 20 ms, and an operator who listed a peer first had a
 * reason. peer-sync's hysteresis keeps a value near a band's edge from crossing it back and
 * forth. UP or DOWN does not matter here (as before: SERVERS shows DOWN servers where they
 * stand, by their last measured distance; ERR FULL lists only the UP ones).
 */

/** Round trips this close (the same band) count as the same distance. */
export const RTT_BAND_MS = 20;

export interface Distance {
  name: string;
  isSelf: boolean;
  /** Undefined: never measured. */
  rttMs: number | undefined;
  proximity: number;
}

/** The band of a measured round trip; Infinity for one never measured (after all that were). */
export function rttBand(rttMs: number | undefined): number {
  return rttMs === undefined ? Number.POSITIVE_INFINITY : Math.floor(rttMs / RTT_BAND_MS);
}

/** Nearest first, as above: a comparator for Array.prototype.sort. */
export function compareServers(a: Distance, b: Distance): number {
  if (a.isSelf !== b.isSelf) return a.isSelf ? -1 : 1;
  const ba = rttBand(a.rttMs);
  const bb = rttBand(b.rttMs);
  if (ba !== bb) return ba < bb ? -1 : 1;
  if (a.proximity !== b.proximity) return a.proximity - b.proximity;
  return a.name < b.name ? -1 : a.name > b.name ? 1 : 0;
}

/** A sorted copy. */
export function nearestFirst<T extends Distance>(rows: readonly T[]): T[] {
  return [...rows].sort(compareServers);
}
