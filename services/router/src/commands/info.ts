/** The information commands: WHO (who is online, here and in the clusters that are up) and SERVERS. */
import { formatOk, formatOnline, formatServer } from "@pesan/shared/protocol";
import type { Batch, ReqCtx } from "../batch/index.ts";
import * as store from "../store.ts";

export async function who(b: Batch, ctx: ReqCtx): Promise<void> {
  const users = await store.onlineUsers(b.tx, b.settings.cluster);
  for (const line of formatOnline(users, ctx.tag)) b.replyTagged(ctx, line);
  b.reply(ctx, formatOk("WHO", users.length));
}

export async function servers(b: Batch, ctx: ReqCtx): Promise<void> {
  const rows = await store.servers(b.tx);
  const online = await store.countOnline(b.tx, b.settings.cluster);
  if (!rows.some((r) => r.isSelf)) b.reply(ctx, formatServer(b.settings.cluster, b.settings.publicAddress, true, online, b.settings.quota));
  for (const r of rows) {
    if (r.isSelf) b.reply(ctx, formatServer(r.name, r.address, true, online, b.settings.quota));
    else b.reply(ctx, formatServer(r.name, r.address, r.active, r.online, r.quota));
  }
  b.reply(ctx, formatOk("SERVERS", rows.some((r) => r.isSelf) ? rows.length : rows.length + 1));
}
