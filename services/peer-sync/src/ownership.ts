/**
 * Who owns what a frame changes (docs/peer-protocol.md, "Ownership"). No imports: the kind
 * modules use it, and frames.ts imports them (a cycle through here would leave these unset).
 */

/**
 * Why a well-formed, well-signed frame was not applied: its sender does not own what it would
 * change (docs/peer-protocol.md, "Ownership"). A fixed list: it is a metric label.
 */
export const IGNORE_REASONS = [
  /** user.register of an account whose home is not the sender. */
  "not_home",
  /** user.register whose passHash is not one a router makes (its cost would stall or break every LOGIN of the name). */
  "bad_pass_hash",
  /** user.unregister from a cluster that is neither the account's home nor its session's holder. */
  "not_owner",
  /** session.* about a session the sender says another cluster holds. */
  "not_own_session",
  /** message.new or broadcast whose id is not in the sender's id space (`<sender>:...`) nor a tagged SEND's (`t.`, message.new only). */
  "foreign_id",
  /** message.new of a tagged SEND's id (`t.`) that a message with other content has here: the copy here stays. */
  "taken_id",
  /** message.state about a message of this cluster's id space that never left it (or not for that recipient). */
  "not_held",
  /** member.join or member.revoke about this cluster or a PEERS peer, or a member.join giving a member another key. */
  "not_member",
  /** member.join naming a membership that was revoked (an older join delivered after its revoke): only a new invite brings the name back. */
  "revoked",
] as const;
export type IgnoreReason = (typeof IGNORE_REASONS)[number];

/** Whether a message id is in a cluster's id space: every id a cluster makes is `<its name>:...` (router's messageId). */
export function inIdSpace(id: string, cluster: string): boolean {
  return id.startsWith(`${cluster}:`);
}
