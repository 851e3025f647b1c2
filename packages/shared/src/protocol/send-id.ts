/**
 * The message id of a tagged SEND (docs/protocol.md "Tags"): derived from the session and the
 * tag, so the same logical send gets the same id on every cluster. A client whose cluster died
 * between storing its SEND and replying resends it, with the same tag, where it RESUMEs; that
 * cluster computes the same id, and every store of the message (the router's insert, a peer's
 * message.new) is idempotent by id: one message, whichever clusters stored it.
 *
 * The token is the one stable identity a session has on every cluster (RESUME keeps it,
 * session.up replicates it), and it is a secret: the id, which the recipient sees, is a hash of
 * it under a domain separator of its own, so it tells the recipient nothing of the token (nor of
 * the session key, which is not derived from it). `generation` counts reuses of one tag in one
 * session after the 60 s window: the 2nd send with that tag, a minute later, is a new message.
 *
 * The id never has a `:` (every id a cluster makes from its stream is `<cluster>:...`, and
 * cluster names have no `.`), so the two id spaces never meet.
 */
import { createHash } from "node:crypto";

export const SEND_ID_PREFIX = "t.";
/** 38 base64url characters: 228 bits of the hash; with the prefix, the protocol's 40-character id limit. */
const HASH_CHARS = 38;
const SEND_ID_RE = /^t\.[A-Za-z0-9_-]{38}$/;
const DOMAIN = "pesan send-id v1";

export function sessionSendId(token: string, tag: string, generation: number): string {
  const h = createHash("sha256").update(`${DOMAIN}\u0000${token}\u0000${tag}\u0000${generation}`, "utf8").digest("base64url");
  return SEND_ID_PREFIX + h.slice(0, HASH_CHARS);
}

/** Whether the id has the form of a tagged SEND's (sessionSendId); says nothing of who made it. */
export function isSessionSendId(id: string): boolean {
  return SEND_ID_RE.test(id);
}

/**
 * How long a SEND's tag stays claimed (docs/protocol.md "Tags"): a retry within it gets the
 * first try's reply, and is never stored again. The routers' dedup window, and the bound on a
 * client's resends of one unanswered SEND (which must come well inside it).
 */
export const SEND_DEDUP_WINDOW_MS = 60_000;

/** What makes a message the same send as another at one tagged-send id. */
export interface SendContent {
  sender: string;
  recipient: string;
  body: string;
}

/**
 * Whether the message found at a tagged SEND's id is that send (stored by another cluster, or
 * by this one before a crash): the same sender, recipient and text. The one rule, for the
 * router (which adds the dedup window: a retry comes within it) and for peer-sync's
 * message.new of such an id (which does not: a peer's copy may arrive any time later).
 */
export function isSameSend(a: SendContent, b: SendContent): boolean {
  return a.sender === b.sender && a.recipient === b.recipient && a.body === b.body;
}
