/**
 * The message commands: SEND (stored, pushed or replicated; exactly-once by its tag), ALL,
 * ACK, and the box: INBOX, READ, DELETE. SEND and ACK only buffer their writes (the batch's
 * writes, flushed once for the whole batch); the box commands read and write at once.
 */
import { formatErr, formatItem, formatMsg, formatOk } from "@pesan/shared/protocol";
import { isProbeName } from "@pesan/shared/names";
import type { Batch, ReqCtx } from "../batch/index.ts";
import { decideRoute } from "../route.ts";
import * as store from "../store.ts";
import type { Session, StoredMessage } from "../store.ts";

export function pushMsg(b: Batch, ctx: ReqCtx, to: Session, m: StoredMessage): void {
  b.push(ctx, to, formatMsg(m.id, m.sender, m.sentAt, m.body));
}

export async function send(b: Batch, ctx: ReqCtx, s: Session, to: string, text: string): Promise<void> {
  const repeated = b.once.repeated(ctx, s);
  if (repeated === "in-batch") return;
  if (repeated !== undefined) {
    b.reply(ctx, repeated.reply);
    // The claim is this very stream entry's: it is our own entry again, taken over after a
    // router died between COMMIT and publishing. Its push may never have gone out, so push
    // again (clients drop a MSG id they already have); a client's retry is another entry, and
    // is not pushed twice.
    if (repeated.entry === ctx.in.msgId) await pushStored(b, ctx, repeated.messageId, to);
    return;
  }
  if (!(await b.view.userExistsNamed(to))) return b.reply(ctx, formatErr("NO_SUCH_USER", `no such user: ${to}`));
  const { id, existing } = await b.once.sendId(ctx, s, to, text);
  const self = b.settings.cluster;
  const session = await b.view.sessionOfUser(to);
  const remote = session !== undefined && session.cluster !== self;
  const linked = session?.cluster === self ? false : await b.view.linked();
  const where = decideRoute(self, session, linked, remote && linked ? await b.view.clusterUp(session.cluster) : false);
  if (existing) {
    // The retry of a send another cluster stored (and replicated here) before it died without
    // answering: the same message, so nothing is stored or pushed again. The first reply said
    // DELIVERED or STORED by where the recipient was then; this says it by what is known now.
    ctx.reply = formatOk("SENT", id, existing.delivered || where.kind !== "stored" ? "DELIVERED" : "STORED");
    return b.reply(ctx, ctx.reply);
  }
  const target = where.kind === "local" ? where.session : undefined;
  const capAck = target?.capAck === true;
  // Only a message that stays undelivered takes a place in the box (a plain session's push
  // counts as delivered at once). Refused before anything is stored, so a retry may succeed.
  if ((target === undefined || capAck) && !(await b.view.boxTakes(to))) return b.reply(ctx, formatErr("BOX_FULL", `${to}'s box is full (${b.settings.boxLimit} undelivered messages); try again after they log in`));
  if (target) pushMsg(b, ctx, target, { id, sender: s.user, recipient: to, sentAt: b.now, body: text, read: false });
  // Not delivered here at once (offline, or online in another cluster): every other cluster
  // gets a copy (message.new), so it is delivered wherever the recipient is or logs in; the
  // cluster that holds the session pushes it. See docs/peer-protocol.md.
  const replicate = where.kind !== "local" && where.linked;
  b.writes.bufferSend(
    ctx,
    {
      id,
      sentAt: b.now,
      sender: s.user,
      recipient: to,
      body: text,
      delivered: target !== undefined && !capAck,
      pushAttempts: target ? 1 : 0,
      nextPushAt: capAck ? new Date(b.now.getTime() + b.settings.resendBaseMs) : null,
      replicated: replicate,
    },
    s.token,
    replicate ? { kind: "message.new", payload: { id, sentAt: b.now.toISOString(), sender: s.user, recipient: to, body: text } } : undefined,
  );
  ctx.reply = formatOk("SENT", id, where.kind === "stored" ? "STORED" : "DELIVERED");
  b.reply(ctx, ctx.reply);
}

async function pushStored(b: Batch, ctx: ReqCtx, id: string, to: string): Promise<void> {
  const target = local(b, await b.view.sessionOfUser(to));
  const m = target ? await store.messageById(b.tx, id) : undefined;
  if (target && m) pushMsg(b, ctx, target, m);
}

/**
 * To every online user but the sender; never stored, so never offered again. The other
 * clusters get one `broadcast` frame and push it to their own sessions; the count includes
 * the sessions this cluster knows they hold (the sessions table, kept by peer-sync).
 */
export async function broadcast(b: Batch, ctx: ReqCtx, s: Session, text: string): Promise<void> {
  const id = ctx.in.msgId;
  const self = b.settings.cluster;
  let n = 0;
  for (const t of await store.localSessions(b.tx, self)) {
    // A probe account is no user: it gets no broadcast and is not counted.
    if (t.user === s.user || t.gateway === "" || isProbeName(t.user)) continue;
    b.push(ctx, t, formatMsg(id, `*${s.user}`, b.now, text));
    n++;
  }
  if (await b.view.linked()) {
    b.writes.bufferFrame({ kind: "broadcast", payload: { id, sentAt: b.now.toISOString(), sender: s.user, body: text } });
    n += await store.countRemoteOnline(b.tx, self, s.user);
  }
  b.reply(ctx, formatOk("SENT", "ALL", n));
}

export function ack(b: Batch, s: Session, id: string): void {
  b.writes.bufferAck(id, s.user);
}

export async function inbox(b: Batch, ctx: ReqCtx, s: Session): Promise<void> {
  const items = await store.inbox(b.tx, s.user, b.settings.inboxLimit);
  for (const m of items) b.reply(ctx, formatItem(m.id, m.sender, m.sentAt, m.read, m.body));
  b.reply(ctx, formatOk("INBOX", items.length));
}

export async function read(b: Batch, ctx: ReqCtx, s: Session, id: string): Promise<void> {
  const m = await store.readMessage(b.tx, s.user, id);
  b.reply(ctx, m ? formatMsg(m.id, m.sender, m.sentAt, m.body) : formatErr("NO_SUCH_MESSAGE"));
}

export async function deleteMessage(b: Batch, ctx: ReqCtx, s: Session, id: string): Promise<void> {
  b.reply(ctx, (await store.deleteMessage(b.tx, s.user, id, b.now)) ? formatOk("DELETED", id) : formatErr("NO_SUCH_MESSAGE"));
}

/** The session if this cluster holds it (has its endpoint); another cluster's is not pushed to. */
function local(b: Batch, s: Session | undefined): Session | undefined {
  return s && s.cluster === b.settings.cluster ? s : undefined;
}
