#!/usr/bin/env node
/** `pnpm topology`: nginx + gateways + routers as processes, the Compose topology without Docker. */
import { numberOption, parseCli } from "./args.ts";
import { startTopology } from "./topology.ts";

const HELP = `usage: pnpm topology [--gateways N] [--routers M] [--monitors K] [--port P] [--http-port H]
                     [--prefix KEYPREFIX] [--dir DIR]

Runs the production topology without Docker: Debian's nginx (apt-get install nginx
libnginx-mod-stream) on UDP P (default 4999) balancing N gateways (default 2, on free ports)
and M routers (default 2), and HTTP H (default 8080) balancing K monitor-bot replicas
(default 2), against DATABASE_URL and REDIS_URL (defaults:
postgres://postgres@127.0.0.1:5432/postgres, redis://127.0.0.1:6379). nginx's config is
rendered from nginx/nginx.conf.template into DIR. Ctrl-C stops everything.
`;

async function main(): Promise<void> {
  const values = parseCli(
    {
      gateways: { type: "string", default: "2" },
      routers: { type: "string", default: "2" },
      port: { type: "string", default: "4999" },
      "http-port": { type: "string", default: "8080" },
      monitors: { type: "string", default: "2" },
      prefix: { type: "string", default: "pesan:" },
      dir: { type: "string" },
    },
    HELP,
  );
  if (!values) return;
  const counts = {
    gateways: numberOption("gateways", values.gateways, 1),
    routers: numberOption("routers", values.routers, 1),
    nginxPort: numberOption("port", values.port, 1),
    httpPort: numberOption("http-port", values["http-port"], 1),
    monitors: numberOption("monitors", values.monitors, 0),
  };
  process.stderr.write("starting gateways, routers, monitors and nginx...\n");
  const t = await startTopology({
    databaseUrl: process.env.DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/postgres",
    redisUrl: process.env.REDIS_URL ?? "redis://127.0.0.1:6379",
    ...counts,
    busPrefix: values.prefix,
    dir: values.dir,
    // Sessions live on the gateway a client reaches through nginx: advertise nginx.
    env: { PUBLIC_ADDRESS: `127.0.0.1:${values.port}`, LOG_LEVEL: process.env.LOG_LEVEL ?? "info" },
  });
  process.stdout.write(`nginx: udp ${t.address} -> ${t.cluster.addresses.join(", ")} (config ${t.nginx.config})\n`);
  if (t.httpUrl) process.stdout.write(`nginx: http ${t.httpUrl} -> ${t.monitors.map((m) => `monitor-bot 127.0.0.1:${m.httpPort}`).join(", ")}\n`);
  process.stdout.write(`chat with: nc -u 127.0.0.1 ${values.port}   (or pnpm chat --server ${t.address})\n`);
  const stop = () => void t.stop().then(() => process.exit(0));
  process.once("SIGINT", stop);
  process.once("SIGTERM", stop);
}

main().catch((e: unknown) => {
  process.stderr.write(`${(e as Error).message}\n`);
  process.exit(1);
});
