/**
 * The measured distance to a peer, from the round trips of the link's hellos (from sending the
 * request to a verified answer; not the announce, see Link), published to server_list
 * (`rtt_ms`) only when it has really moved. Pure: the Link feeds it samples.
 *
 * The distance is the smallest of the last RTT_WINDOW round trips (a windowed minimum, as
 * BBR's min_rtt or LEDBAT's base delay), not their average (TCP's SRTT). A round trip is the
 * path's delay plus whatever the two machines were busy with: the peer's database commits for
 * the hello, a GC pause, a loaded CPU. Those only ever add, so the quickest recent answer is
 * the best estimate of how far away the peer is. An average follows the load instead: in
 * test/peer-nearest.test.ts on a loaded 2-core machine (load average 15), a peer whose quickest
 * hellos took 5-12 ms averaged about 90 ms, what a peer 80 ms farther away took at best, and
 * the two swapped places. The window lets the distance rise again when the path really got
 * longer (after RTT_WINDOW hellos), and it falls at the first quicker answer.
 *
 * Hysteresis: the published value changes only when the distance is more than
 * max(HYSTERESIS_MIN_MS, HYSTERESIS_FRACTION of it) away from it. So the rows the routers order
 * by do not change at every check, and a value near the edge of the routers' "same distance"
 * margin (server-order.ts, the one ordering rule) does not cross it back and forth.
 */

/** How many recent hellos the distance is the minimum of (20 s at the default 2 s interval). */
export const RTT_WINDOW = 10;
/** Below this a change of the distance is noise on any network. */
export const HYSTERESIS_MIN_MS = 3;
/** ...and so is a change of less than this fraction of the published value (far peers wobble more). */
export const HYSTERESIS_FRACTION = 0.1;

/**
 * What to publish (whole ms) given what was published last (undefined: nothing yet) and the
 * current distance: the old value while the distance stays within the hysteresis of it.
 */
export function publishedRtt(publishedMs: number | undefined, distanceMs: number): number {
  if (publishedMs !== undefined && Math.abs(distanceMs - publishedMs) <= Math.max(HYSTERESIS_MIN_MS, HYSTERESIS_FRACTION * publishedMs)) return publishedMs;
  return Math.round(distanceMs);
}

/** One link's estimator: round trips in, the value to write to server_list out. */
export class RttEstimator {
  private readonly window: number[] = [];
  private published: number | undefined;

  /** Feeds one hello's round trip (ms); returns the value to publish (whole ms). */
  sample(ms: number): number {
    if (!Number.isFinite(ms) || ms < 0) throw new RangeError(`a round-trip sample must be a finite number >= 0, not ${ms}`);
    this.window.push(ms);
    if (this.window.length > RTT_WINDOW) this.window.shift();
    this.published = publishedRtt(this.published, this.distanceMs!);
    return this.published;
  }

  /** What was published last (whole ms), undefined before the first sample. */
  get publishedMs(): number | undefined {
    return this.published;
  }

  /** The minimum of the window (ms), undefined before the first sample (or after reset). */
  get distanceMs(): number | undefined {
    return this.window.length === 0 ? undefined : Math.min(...this.window);
  }

  /**
   * Forgets the samples (the peer went DOWN: it may come back elsewhere). What was published
   * stays the reference of the hysteresis, as it stays in the row.
   */
  reset(): void {
    this.window.length = 0;
  }
}
