/**
 * Renders nginx/nginx.conf.template for Compose and for the process topology, and runs the
 * real nginx from Debian (stream module) in front of a process cluster.
 */
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { REPO_ROOT } from "./cluster.ts";

export interface NginxLayout {
  udpListen: string;
  udpServers: string[];
  httpListen: string;
  /** No HTTP block when empty (no monitor-bot replicas to balance). */
  httpServers: string[];
  /**
   * Debian's nginx loads the stream module dynamically (`true`: by its path; "modules-enabled":
   * whatever Debian's packages enabled, which matches nothing in the official image, where the
   * module is built in); `false`: nothing to load.
   */
  loadStreamModule: boolean | "modules-enabled";
  pidFile: string;
  errorLog: string;
}

const STREAM_MODULE = "/usr/lib/nginx/modules/ngx_stream_module.so";

function fill(template: string, vars: Record<string, string>): string {
  return template.replace(/\{\{(\w+)\}\}/g, (_, name: string) => {
    const v = vars[name];
    if (v === undefined) throw new Error(`nginx template: no value for {{${name}}}`);
    return v;
  });
}

export function renderNginxConfig(l: NginxLayout): string {
  const t = (name: string) => readFileSync(join(REPO_ROOT, "nginx", name), "utf8");
  const servers = (list: string[], opts: string) => list.map((s) => `    server ${s} ${opts};`).join("\n");
  const http =
    l.httpServers.length === 0 ? "" : fill(t("http.conf.template"), { http_listen: l.httpListen, http_servers: servers(l.httpServers, "max_fails=1 fail_timeout=5s") });
  return fill(t("nginx.conf.template"), {
    load_modules:
      l.loadStreamModule === "modules-enabled"
        ? "# The Debian stand-in image loads the stream module here; the official image has it built in.\ninclude /etc/nginx/modules-enabled/*.conf;"
        : l.loadStreamModule
          ? `load_module ${STREAM_MODULE};`
          : "",
    pid_file: l.pidFile,
    error_log: l.errorLog,
    udp_listen: l.udpListen,
    udp_servers: servers(l.udpServers, "max_fails=1 fail_timeout=10s"),
    http_block: http,
  });
}

/** The Compose renderings: service names resolve to every replica when nginx starts. */
export const COMPOSE_NGINX_FILES: Record<string, { gateway: string; monitor: string | undefined }> = {
  // docker-compose.yml
  "nginx.compose.conf": { gateway: "udp-gateway", monitor: "monitor-bot" },
  // docker-compose.two-clusters.yml
  "nginx.cluster-a.conf": { gateway: "udp-gateway-a", monitor: undefined },
  "nginx.cluster-b.conf": { gateway: "udp-gateway-b", monitor: undefined },
};

export function composeNginxConfig(file = "nginx.compose.conf"): string {
  const c = COMPOSE_NGINX_FILES[file];
  if (!c) throw new Error(`no Compose nginx config named ${file}`);
  return renderNginxConfig({
    udpListen: "4999",
    udpServers: [`${c.gateway}:4999`],
    httpListen: "8080",
    httpServers: c.monitor ? [`${c.monitor}:8080`] : [],
    loadStreamModule: "modules-enabled",
    pidFile: "/var/run/nginx.pid",
    errorLog: "/dev/stderr",
  });
}

export const COMPOSE_NGINX_FILE = join(REPO_ROOT, "nginx", "nginx.compose.conf");

export function nginxAvailable(): boolean {
  return spawnSync("nginx", ["-v"], { stdio: "ignore" }).status === 0 && existsSync(STREAM_MODULE);
}

export class NginxProcess {
  readonly dir: string;
  readonly config: string;
  private proc: ChildProcess | undefined;
  private exited: Promise<void> = Promise.resolve();

  constructor(dir: string, layout: Omit<NginxLayout, "pidFile" | "errorLog" | "loadStreamModule">) {
    this.dir = dir;
    mkdirSync(join(dir, "logs"), { recursive: true });
    this.config = join(dir, "nginx.conf");
    writeFileSync(this.config, renderNginxConfig({ ...layout, loadStreamModule: true, pidFile: join(dir, "nginx.pid"), errorLog: join(dir, "logs", "error.log") }));
  }

  /** Checks the configuration (`nginx -t`), then runs nginx in the foreground. */
  async start(): Promise<void> {
    const check = spawnSync("nginx", ["-t", "-q", "-c", this.config, "-p", this.dir], { encoding: "utf8" });
    if (check.status !== 0) throw new Error(`nginx rejected ${this.config}: ${check.stderr}`);
    const proc = spawn("nginx", ["-c", this.config, "-p", this.dir, "-g", "daemon off;"], { stdio: ["ignore", "ignore", "pipe"] });
    this.proc = proc;
    this.exited = new Promise((r) => proc.once("exit", () => r()));
    await new Promise((r) => setTimeout(r, 200));
    if (proc.exitCode !== null) throw new Error(`nginx exited at start; see ${join(this.dir, "logs", "error.log")}`);
  }

  async stop(): Promise<void> {
    if (!this.proc || this.proc.exitCode !== null) return;
    this.proc.kill("SIGQUIT");
    const t = setTimeout(() => this.proc?.kill("SIGKILL"), 5000);
    await this.exited;
    clearTimeout(t);
  }
}
