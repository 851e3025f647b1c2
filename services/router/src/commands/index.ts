/**
 * Every command of the client protocol for one cluster, in arrival order within a batch: the
 * session each request acts in is decided here (proofs, PLAIN_SESSIONS), then its family runs
 * it (session.ts, messages.ts, info.ts) through the batch's view, writes and transaction, and
 * answers with reply()/push().
 */
import { formatErr, formatOk, HEARTBEAT_REPLY, type Request } from "@pesan/shared/protocol";
import { PROTOCOL_ERRORS } from "@pesan/shared/errors";
import type { Batch, ReqCtx } from "../batch/index.ts";
import type { Session } from "../store.ts";
import { servers, who } from "./info.ts";
import { ack, broadcast, deleteMessage, inbox, read, send } from "./messages.ts";
import { cap, login, logout, register, resume, unregister, validated } from "./session.ts";

export { LOST_RACE_TEXT, newToken } from "./session.ts";

/** Commands that work without a session. */
const NO_SESSION = new Set<Request["cmd"]>(["REGISTER", "LOGIN", "RESUME", "CAP", "SERVERS", "LIVE"]);
/** Commands that only buffer writes; everything else first flushes them (it may read messages). */
const FAST = new Set<Request["cmd"]>(["SEND", "ACK", "LIVE", "CAP", "ALL", "PING"]);

export async function runCommands(b: Batch): Promise<void> {
  for (const ctx of b.reqs) {
    const req = ctx.req;
    if (!req) continue;
    if (!FAST.has(req.cmd)) await b.writes.flush();
    const at = await b.view.sessionAt(ctx.in.gateway, ctx.in.addr);
    const s = sessionOf(b, ctx, req, at);
    if (s === "refused") continue;
    if (!s && !NO_SESSION.has(req.cmd)) {
      b.reply(ctx, formatErr("NOT_LOGGED_IN", at ? notInSessionText(at) : PROTOCOL_ERRORS.NOT_LOGGED_IN));
      continue;
    }
    if (s) ctx.session = s;
    await handle(b, ctx, req, s);
  }
  await b.finish();
}

/** Text of the reply to a datagram with a proof that no session here at its address holds. */
export const PROOF_INVALID_TEXT = "proof not valid for this address; RESUME";

/**
 * The session a request acts in (docs/protocol.md "Security"): the one bound at its address,
 * if the datagram carries that session's proof, or carries none where the session may go on
 * without (a plain session PLAIN_SESSIONS allows, never a proven one). "refused" when it has
 * been answered already.
 */
function sessionOf(b: Batch, ctx: ReqCtx, req: Request, at: Session | undefined): Session | undefined | "refused" {
  if (ctx.in.proof !== undefined) {
    if (!at || at.proofKeyId !== ctx.in.proof) {
      b.reply(ctx, formatErr("NOT_LOGGED_IN", PROOF_INVALID_TEXT));
      return "refused";
    }
    if (!at.proven) validated(b, ctx, at);
    return at;
  }
  if (!at || (!at.proven && at.plainOk)) return at;
  // A plain datagram at a proof session's address: anyone could have sent it. It must not
  // act in the session or evict it: a plain LOGIN there, or a RESUME of another account, would.
  // A RESUME of this session's own user is let through: its token went only to this address,
  // and it is how the client re-binds after its gateway restarted and forgot the key.
  if (at.proven && (req.cmd === "LOGIN" || (req.cmd === "RESUME" && req.user !== at.user))) {
    b.reply(ctx, formatErr("AUTH", "a proof session holds this address; send with its proof, or RESUME from another address"));
    return "refused";
  }
  return undefined;
}

function notInSessionText(at: Session): string {
  return at.proven ? "this session needs a proof on every datagram" : "proofs required from this address (PLAIN_SESSIONS)";
}

async function handle(b: Batch, ctx: ReqCtx, req: Request, s: Session | undefined): Promise<void> {
  switch (req.cmd) {
    case "LIVE":
      return b.reply(ctx, HEARTBEAT_REPLY);
    case "PING":
      // Like IRC's PING, but it needs a session: a client learns its session is still bound
      // to the address it sends from (after a load balancer moved it, it is not).
      return b.reply(ctx, formatOk("PONG"));
    case "REGISTER":
      return register(b, ctx, req.user);
    case "LOGIN":
      return login(b, ctx, req.user);
    case "RESUME":
      return resume(b, ctx, req.user, req.token);
    case "CAP":
      return cap(b, ctx, s);
    case "LOGOUT":
      return logout(b, ctx, s!);
    case "UNREGISTER":
      return unregister(b, ctx, s!);
    case "SEND":
      return send(b, ctx, s!, req.to, req.text);
    case "ALL":
      return broadcast(b, ctx, s!, req.text);
    case "ACK":
      return ack(b, s!, req.id);
    case "INBOX":
      return inbox(b, ctx, s!);
    case "READ":
      return read(b, ctx, s!, req.id);
    case "DELETE":
      return deleteMessage(b, ctx, s!, req.id);
    case "WHO":
      return who(b, ctx);
    case "SERVERS":
      return servers(b, ctx);
  }
}
