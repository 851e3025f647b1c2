/**
 * The production topology without Docker: the real nginx (UDP load balancing with client
 * affinity, HTTP to the monitor-bot replicas) in front of a process cluster, with a config
 * rendered from the same template as the Compose one.
 */
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startCluster, freePorts, ServiceProcess, type Cluster, type ClusterOptions } from "./cluster.ts";
import { NginxProcess } from "./nginx.ts";

export interface TopologyOptions extends ClusterOptions {
  /** nginx's UDP port (default: a free one). */
  nginxPort?: number;
  /** nginx's HTTP port for the monitor-bot replicas (default: a free one). */
  httpPort?: number;
  /** monitor-bot replicas behind nginx's HTTP port (default 2; 0 for none). */
  monitors?: number;
  /** Where nginx's config, pid and logs go (default: a new temporary directory). */
  dir?: string;
}

export interface Topology {
  cluster: Cluster;
  nginx: NginxProcess;
  monitors: ServiceProcess[];
  /** Where clients connect: nginx's UDP address. */
  address: string;
  /** nginx's HTTP base URL (monitor dashboard and API), when there are monitors. */
  httpUrl: string | undefined;
  stop(): Promise<void>;
}

/** The probe accounts' password unless PROBE_PASSWORD is set; routers and monitors get the same. */
const TOPOLOGY_PROBE_PASSWORD = "topology-probe";

/** A monitor-bot config that watches this topology: every router and gateway, and messaging through nginx. */
function monitorConfig(cluster: Cluster, nginxUdp: string): string {
  const components = [
    ...cluster.routers.map((r, i) => `  - { name: router${i + 1}, type: http, url: "http://127.0.0.1:${r.httpPort}/healthz" }`),
    ...cluster.gateways.map((g, i) => `  - { name: gateway${i + 1}, type: udp, address: "127.0.0.1:${g.udpPort}" }`),
  ];
  return [
    "# Written by tools/cluster/src/topology.ts for this topology.",
    "instance: ${ENV:MONITOR_INSTANCE}",
    "http:",
    "  host: 127.0.0.1",
    "  port: ${ENV:HTTP_PORT}",
    "log:",
    "  level: ${ENV:LOG_LEVEL:-warn}",
    "database:",
    "  url: ${ENV:DATABASE_URL}",
    "defaults: { interval: 5s, timeout: 2s }",
    "components:",
    ...components,
    "messaging:",
    // One probe account per replica: a user has one session.
    `  - { name: nginx, gateway: "${nginxUdp}", user: "probe-\${ENV:MONITOR_INSTANCE}", password: "\${ENV:PROBE_PASSWORD}", interval: 5s, timeout: 2s, expiry: 5s }`,
    "",
  ].join("\n");
}

export async function startTopology(o: TopologyOptions): Promise<Topology> {
  // The routers take the monitors' probe password for REGISTER of their probe-... accounts.
  const probePassword = o.env?.PROBE_PASSWORD ?? process.env.PROBE_PASSWORD ?? TOPOLOGY_PROBE_PASSWORD;
  const cluster = await startCluster({ ...o, env: { ...o.env, PROBE_PASSWORD: probePassword } });
  const nMonitors = o.monitors ?? 2;
  const [udpPort] = o.nginxPort ? [o.nginxPort] : await freePorts(1);
  const httpPorts = await freePorts(nMonitors + 1);
  const httpPort = o.httpPort ?? httpPorts[nMonitors]!;
  const dir = o.dir ?? mkdtempSync(join(tmpdir(), "pesan-topology-"));
  const address = `127.0.0.1:${udpPort}`;
  const monitors: ServiceProcess[] = [];
  if (nMonitors > 0) {
    const file = join(dir, "monitor.yaml");
    writeFileSync(file, monitorConfig(cluster, address));
    for (let i = 0; i < nMonitors; i++) {
      const env = { DATABASE_URL: o.databaseUrl, MONITOR_CONFIG: file, MONITOR_INSTANCE: `monitor${i + 1}`, HTTP_PORT: String(httpPorts[i]), ...o.env, PROBE_PASSWORD: probePassword };
      monitors.push(new ServiceProcess("monitor", `monitor${i + 1}`, env, httpPorts[i]!, undefined, o.logDir ? join(o.logDir, `monitor-${i + 1}.log`) : undefined));
    }
  }
  const nginx = new NginxProcess(dir, {
    udpListen: address,
    udpServers: cluster.addresses,
    httpListen: `127.0.0.1:${httpPort}`,
    httpServers: monitors.map((m) => `127.0.0.1:${m.httpPort}`),
  });
  const stopAll = async () => {
    await nginx.stop();
    await Promise.all(monitors.map((m) => m.stop()));
    await cluster.stop();
  };
  try {
    for (const m of monitors) m.start();
    await Promise.all(monitors.map((m) => m.waitReady(o.readyTimeoutMs ?? 30_000)));
    await nginx.start();
  } catch (e) {
    await stopAll();
    throw e;
  }
  return { cluster, nginx, monitors, address, httpUrl: nMonitors > 0 ? `http://127.0.0.1:${httpPort}` : undefined, stop: stopAll };
}
