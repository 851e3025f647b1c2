#!/usr/bin/env node
/** `pnpm cluster`: gateways and routers as separate processes against Postgres and Redis. */
import { numberOption, parseCli } from "./args.ts";
import { startCluster } from "./cluster.ts";

const HELP = `usage: pnpm cluster [--gateways N] [--routers M] [--port P] [--prefix KEYPREFIX] [--logs DIR]

Starts N udp-gateway and M router processes (default 2 and 2) against DATABASE_URL and
REDIS_URL (defaults: postgres://postgres@127.0.0.1:5432/postgres, redis://127.0.0.1:6379).
Gateways listen on UDP P, P+1, ... (default 4999). Ctrl-C stops them all.
`;

async function main(): Promise<void> {
  const values = parseCli(
    {
      gateways: { type: "string", default: "2" },
      routers: { type: "string", default: "2" },
      port: { type: "string", default: "4999" },
      prefix: { type: "string", default: "pesan:" },
      logs: { type: "string" },
    },
    HELP,
  );
  if (!values) return;
  const gateways = numberOption("gateways", values.gateways, 1);
  const routers = numberOption("routers", values.routers, 1);
  const port = numberOption("port", values.port, 1);
  const databaseUrl = process.env.DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/postgres";
  const redisUrl = process.env.REDIS_URL ?? "redis://127.0.0.1:6379";
  process.stderr.write(`starting ${gateways} gateway(s) and ${routers} router(s)...\n`);
  const cluster = await startCluster({ databaseUrl, redisUrl, gateways, routers, udpPort: port, busPrefix: values.prefix, logDir: values.logs, env: { LOG_LEVEL: process.env.LOG_LEVEL ?? "info" } });
  for (const g of cluster.gateways) process.stdout.write(`gateway ${g.id}: udp 127.0.0.1:${g.udpPort}, http http://127.0.0.1:${g.httpPort}/healthz\n`);
  for (const r of cluster.routers) process.stdout.write(`router ${r.id}: http http://127.0.0.1:${r.httpPort}/healthz\n`);
  process.stdout.write(`chat with: nc -u 127.0.0.1 ${port}   (or pnpm chat --server ${cluster.addresses.join(",")})\n`);
  const stop = () => {
    process.stderr.write("stopping...\n");
    void cluster.stop().then(() => process.exit(0));
  };
  process.once("SIGINT", stop);
  process.once("SIGTERM", stop);
}

main().catch((e: unknown) => {
  process.stderr.write(`${(e as Error).message}\n`);
  process.exit(1);
});
