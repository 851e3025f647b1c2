/**
 * The measured distance to a peer: the round trip of the link's liveness checks (announce or
 * hello, from sending the request to a verified answer), smoothed, and published to
 * server_list (`rtt_ms`) only when it has really moved. Pure: the Link feeds it samples.
 *
 * Smoothing is TCP's SRTT (RFC 6298 section 2): the first sample is taken as it is, then
 * SRTT <- (1 - 1/8) * SRTT + 1/8 * R'. One slow answer (a GC pause, a loaded machine) moves
 * it by an eighth of the excess; a peer that really moved gets there in a few dozen checks.
 * Failed checks give no sample (as TCP's Karn rule: a timeout measures the timeout).
 *
 * Hysteresis: the published value changes only when the smoothed one is more than
 * max(HYSTERESIS_MIN_MS, HYSTERESIS_FRACTION of it) away. So the rows the routers order by do
 * not change on every check, and two peers whose round trips wobble around each other do not
 * swap places in `SERVERS` / `ERR FULL` each round; how the routers compare the published values
 * (in bands of the same width for all) is the router's one ordering rule (server-order.ts).
 */

/** RFC 6298's alpha. */
export const RTT_ALPHA = 1 / 8;
/** Below this a change of the smoothed round trip is noise on any network. */
export const HYSTERESIS_MIN_MS = 3;
/** ...and so is a change of less than this fraction of the published value (far peers wobble more). */
export const HYSTERESIS_FRACTION = 0.1;

/** The next SRTT (ms) from the current one (undefined before the first sample) and a sample. */
export function smoothRtt(srttMs: number | undefined, sampleMs: number): number {
  if (!Number.isFinite(sampleMs) || sampleMs < 0) throw new RangeError(`a round-trip sample must be a finite number >= 0, not ${sampleMs}`);
  return srttMs === undefined ? sampleMs : (1 - RTT_ALPHA) * srttMs + RTT_ALPHA * sampleMs;
}

/**
 * What to publish (whole ms) given what was published last (undefined: nothing yet) and the
 * current SRTT: the old value while the SRTT stays within the hysteresis of it.
 */
export function publishedRtt(publishedMs: number | undefined, srttMs: number): number {
  if (publishedMs !== undefined && Math.abs(srttMs - publishedMs) <= Math.max(HYSTERESIS_MIN_MS, HYSTERESIS_FRACTION * publishedMs)) return publishedMs;
  return Math.round(srttMs);
}

/** One link's estimator: samples in, the value to write to server_list out. */
export class RttEstimator {
  private srtt: number | undefined;
  private published: number | undefined;

  /** Feeds one successful check's round trip (ms); returns the value to publish (whole ms). */
  sample(ms: number): number {
    this.srtt = smoothRtt(this.srtt, ms);
    this.published = publishedRtt(this.published, this.srtt);
    return this.published;
  }

  /** The smoothed round trip (ms), undefined before the first sample. */
  get smoothedMs(): number | undefined {
    return this.srtt;
  }
}
