/**
 * The addresses one name stands for, round by round: under Compose a scaled service name
 * resolves to every replica. Docker's DNS drops a stopped container at once, so an address that
 * stops resolving is kept (and so still checked, and shown down) for forgetAfterMs before it is
 * forgotten. Pure bookkeeping: the caller resolves, checks and reports. Both the component
 * probes and a target's `replicas: true` services use it.
 */
export interface ResolvedAddress {
  address: string;
  family: number;
}

export interface ReplicaRound {
  /** Every address to check this round; current: the name still resolves to it. */
  check: Array<ResolvedAddress & { current: boolean }>;
  /** Addresses unresolved for forgetAfterMs: to be reported gone, once. */
  forgotten: string[];
}

export class Replicas {
  private readonly forgetAfterMs: number;
  /** Every address seen, with when it last resolved. */
  private readonly known = new Map<string, { family: number; lastSeen: number }>();

  constructor(forgetAfterMs: number) {
    this.forgetAfterMs = forgetAfterMs;
  }

  /** Addresses known from before (e.g. outages in the history): checked until forgotten like any other. */
  seed(addresses: readonly ResolvedAddress[], nowMs: number): void {
    for (const a of addresses) if (!this.known.has(a.address)) this.known.set(a.address, { family: a.family, lastSeen: nowMs });
  }

  round(resolved: readonly ResolvedAddress[], nowMs: number): ReplicaRound {
    for (const a of resolved) this.known.set(a.address, { family: a.family, lastSeen: nowMs });
    const current = new Set(resolved.map((a) => a.address));
    const forgotten: string[] = [];
    for (const [address, k] of this.known) {
      if (current.has(address) || nowMs - k.lastSeen < this.forgetAfterMs) continue;
      this.known.delete(address);
      forgotten.push(address);
    }
    return { check: [...this.known].map(([address, k]) => ({ address, family: k.family, current: current.has(address) })), forgotten };
  }
}
