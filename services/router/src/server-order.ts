/**
 * The one rule for "nearest first" (SERVERS, ERR FULL): this cluster itself first (distance 0),
 * then the servers peer-sync measured, by their round trip (`rtt_ms`: the quickest of the sync
 * link's recent hellos, see services/peer-sync/src/rtt.ts), then those never
 * measured, in configured order (proximity: the position in PEERS), then by name.
 *
 * Round trips that are close count as the same distance, and then the configured order
 * decides: going up from the nearest, the measured servers form groups, each from its nearest
 * member to the last one within max(TIE_MIN_MS, TIE_FRACTION of that nearest one's round
 * trip); within a group, proximity and then the name order them. A user does not notice 25 ms
 * (or a quarter of a long round trip), an operator who listed a peer first had a reason, and
 * two peers a few ms apart do not swap places whenever one of them wobbles. (peer-sync's
 * hysteresis keeps a value near a group's edge from crossing it back and forth.)
 *
 * UP or DOWN does not matter here, as before: SERVERS shows a DOWN server where its last
 * measured distance puts it; ERR FULL lists only the UP ones, in this order.
 */

/** Round trips closer than this to a group's nearest one are in that group... */
export const TIE_MIN_MS = 25;
/** ...or closer than this fraction of it, when that is more (far peers wobble more). */
export const TIE_FRACTION = 0.25;

export interface Distance {
  name: string;
  isSelf: boolean;
  /** Undefined: never measured. */
  rttMs: number | undefined;
  proximity: number;
}

const byConfig = (a: Distance, b: Distance): number => a.proximity - b.proximity || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0);

/** A sorted copy: nearest first, as above. */
export function nearestFirst<T extends Distance>(rows: readonly T[]): T[] {
  const self = rows.filter((r) => r.isSelf);
  const others = rows.filter((r) => !r.isSelf);
  const measured = others.filter((r) => r.rttMs !== undefined).sort((a, b) => a.rttMs! - b.rttMs! || byConfig(a, b));
  const out: T[] = [...self];
  for (let i = 0; i < measured.length; ) {
    const limit = measured[i]!.rttMs! + Math.max(TIE_MIN_MS, TIE_FRACTION * measured[i]!.rttMs!);
    let j = i + 1;
    while (j < measured.length && measured[j]!.rttMs! < limit) j++;
    out.push(...measured.slice(i, j).sort(byConfig));
    i = j;
  }
  out.push(...others.filter((r) => r.rttMs === undefined).sort(byConfig));
  return out;
}
