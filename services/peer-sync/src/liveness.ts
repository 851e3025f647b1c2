/**
 * A link's view of its peer. Pure: the Link feeds it outcomes and acts on the transitions.
 * UNKNOWN until the first answer or the first run of failures, so a restart of peer-sync does
 * not flip a peer to DOWN on one lost check.
 */
export type LinkState = "UNKNOWN" | "UP" | "DOWN";

export interface LivenessState {
  state: LinkState;
  /** Failed checks in a row. */
  failures: number;
}

export interface Transition extends LivenessState {
  /** The state before this event, when it changed; undefined when it did not. */
  changedFrom: LinkState | undefined;
}

export const INITIAL: LivenessState = { state: "UNKNOWN", failures: 0 };

export function onSuccess(s: LivenessState): Transition {
  return { state: "UP", failures: 0, changedFrom: s.state === "UP" ? undefined : s.state };
}

/** failuresToDown failed checks in a row make the peer DOWN. */
export function onFailure(s: LivenessState, failuresToDown: number): Transition {
  const failures = s.failures + 1;
  const state: LinkState = failures >= failuresToDown ? "DOWN" : s.state;
  return { state, failures, changedFrom: state === s.state ? undefined : s.state };
}

export class Liveness {
  private s: LivenessState = INITIAL;
  private readonly failuresToDown: number;

  constructor(failuresToDown: number) {
    this.failuresToDown = failuresToDown;
  }

  get state(): LinkState {
    return this.s.state;
  }

  get failures(): number {
    return this.s.failures;
  }

  success(): Transition {
    const t = onSuccess(this.s);
    this.s = { state: t.state, failures: t.failures };
    return t;
  }

  failure(): Transition {
    const t = onFailure(this.s, this.failuresToDown);
    this.s = { state: t.state, failures: t.failures };
    return t;
  }
}
