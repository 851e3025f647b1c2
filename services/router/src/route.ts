/**
 * Where a SEND goes (docs/peer-protocol.md, "Update Messages and routing"): pushed here, routed
 * to the cluster that holds the recipient's session, or stored as offline. Pure, so it is
 * unit-tested beside the code.
 */
import type { Session } from "./store.ts";

export type Route =
  /** The session is held here: pushed now, as always. */
  | { kind: "local"; session: Session }
  /** Held by another cluster that is UP: a copy goes to every peer and that one pushes it (`DELIVERED`). */
  | { kind: "remote"; cluster: string; linked: true }
  /** Offline, or held by a cluster that is DOWN: stored (`STORED`), and copied to every peer when linked. */
  | { kind: "stored"; linked: boolean };

/**
 * @param self this cluster's name
 * @param session the recipient's session as this cluster knows it (any cluster's), if online
 * @param linked whether peer-sync links this cluster to others (peer_links has rows)
 * @param holderUp whether the cluster holding the session is UP in server_list
 */
export function decideRoute(self: string, session: Session | undefined, linked: boolean, holderUp: boolean): Route {
  if (session && session.cluster === self) {
    // A local row always has an endpoint (another cluster's rows have gateway = '').
    if (session.gateway !== "") return { kind: "local", session };
  }
  if (session && session.cluster !== self && linked && holderUp) return { kind: "remote", cluster: session.cluster, linked: true };
  return { kind: "stored", linked };
}
