/**
 * The live dashboard: `GET /` and its two static files (from public/, read once at start-up,
 * no CDN: the machines may be offline), a snapshot of everything at `GET /api/dashboard`, the
 * same pushed every 2 s as server-sent events at `GET /api/live`, and chart data at
 * `GET /api/history/:server`.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import type { FastifyInstance } from "fastify";
import type { Queryable } from "@pesan/shared/db";
import type { Logger } from "@pesan/shared/observability";
import type { MonitorConfig } from "../config/config.ts";
import { hostId, type Monitor } from "../monitor.ts";
import { sampleSeries } from "../history/store.ts";
import type { UserCounts, UserStats } from "../history/user-stats.ts";
import { hostViews } from "./views.ts";
import type { Silences } from "../alerting/silence-store.ts";
import { covers, suppressedBy } from "../alerting/suppression.ts";

export const LIVE_PERIOD_MS = 2000;
/** Points per chart line at most, whatever the window. */
const MAX_POINTS = 120;

export interface DashboardDeps {
  monitor: Monitor;
  config: MonitorConfig;
  userStats: UserStats | undefined;
  db: Queryable;
  logger: Logger;
  now: () => Date;
  /** services/monitor-bot/public */
  publicDir: string;
  /** Facts about the bot for the page's footer, when there is one. */
  telegram?: () => { leader: boolean; mode: string };
  /** What holds alerts now (mutes, acks, maintenance windows). */
  silences?: Silences;
}

export interface DashboardSnapshot {
  at: string;
  instance: string;
  servers: Array<{
    name: string;
    reachable: boolean | null;
    since: string | null;
    cpu: number | null;
    mem: number | null;
    hdd: number | null;
    /** Bytes of RAM and of the disk the percentages are of, when the probes tell them. */
    memTotal: number | null;
    hddTotal: number | null;
    /** The 1, 5 and 15 minute load averages, read with the CPU. */
    load: [number, number, number] | null;
    updatetime: string | null;
    error: string | null;
    services: Array<{ name: string; status: "On" | "Off"; updatetime: string }>;
  }>;
  components: Array<{ name: string; type: string; address: string | null; status: "up" | "down"; latency: number; detail: string; updatetime: string }>;
  messaging: Array<{ name: string; status: string; delay: number | null; expired: number; detail: string; updatetime: string }>;
  userstats: UserCounts | null;
  userstatsError: string | null;
  /** silenced: alerts about it are held (see silences). */
  down: Array<{ component: string; since: string; detail: string; silenced: boolean }>;
  /** Mutes, acks and maintenance windows in effect; until null: an ack (until it recovers). */
  silences: Array<{ component: string; kind: "mute" | "ack" | "maintenance"; until: string | null; by: string; down: string[] }>;
  telegram: { leader: boolean; mode: string } | null;
}

const ASSETS: Record<string, string> = {
  "/": "index.html",
  "/dashboard.js": "dashboard.js",
  "/dashboard.css": "dashboard.css",
};
const TYPES: Record<string, string> = { html: "text/html; charset=utf-8", js: "text/javascript; charset=utf-8", css: "text/css; charset=utf-8" };
// Everything comes from this server: a stray external reference fails loudly in the browser.
const CSP = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'";

export async function buildSnapshot(deps: DashboardDeps): Promise<DashboardSnapshot> {
  const { monitor, config } = deps;
  const iso = (d: Date | undefined) => d?.toISOString() ?? null;
  let userstats: UserCounts | null = null;
  let userstatsError: string | null = null;
  if (deps.userStats) {
    try {
      userstats = await deps.userStats.get();
    } catch (e) {
      userstatsError = (e as Error).message;
    }
  } else userstatsError = "disabled";
  const active = deps.silences ? await deps.silences.active(deps.now()) : [];
  return {
    at: deps.now().toISOString(),
    instance: config.instance,
    servers: hostViews(
      monitor,
      config.targets.map((t) => t.name),
    ).map((h) => {
      const times = [h.cpu.at, h.mem.at, h.hdd.at].filter((d): d is Date => d !== undefined).sort((a, b) => b.getTime() - a.getTime());
      const errors = [h.cpu.error, h.mem.error, h.hdd.error].filter((e): e is string => e !== undefined);
      return {
        name: h.name,
        reachable: h.reachable ?? null,
        since: iso(h.since),
        cpu: h.cpu.value,
        mem: h.mem.value,
        hdd: h.hdd.value,
        memTotal: h.mem.total ?? null,
        hddTotal: h.hdd.total ?? null,
        load: h.cpu.load ?? null,
        updatetime: iso(times[0]),
        error: h.reachable === false ? (monitor.down().find((d) => d.component === hostId(h.name))?.detail ?? "unreachable") : (errors[0] ?? null),
        services: h.services.map((s) => ({ name: s.name, status: s.status, updatetime: s.at.toISOString() })),
      };
    }),
    components: monitor
      .componentStates()
      .map((c) => ({ name: c.name, type: c.type, address: c.address ?? null, status: c.ok ? ("up" as const) : ("down" as const), latency: Math.round(c.latencyMs) / 1000, detail: c.detail, updatetime: c.at.toISOString() }))
      .sort((a, b) => a.name.localeCompare(b.name) || (a.address ?? "").localeCompare(b.address ?? "")),
    messaging: [...monitor.messagingStates()].map(([name, m]) => ({ name, status: m.status, delay: m.delaySeconds, expired: m.expirySeconds, detail: m.detail, updatetime: m.at.toISOString() })),
    userstats,
    userstatsError,
    down: monitor.down().map((d) => ({ component: d.component, since: d.since.toISOString(), detail: d.detail, silenced: suppressedBy(d.component, active) !== undefined })),
    silences: active.map((s) => ({
      component: s.component,
      kind: s.kind,
      until: iso(s.until ?? undefined),
      by: s.by,
      down: monitor
        .down()
        .filter((d) => covers(s.component, d.component))
        .map((d) => d.component),
    })),
    telegram: deps.telegram?.() ?? null,
  };
}

/** Registers the page, its files and its JSON routes on the monitor's HTTP server. */
export function registerDashboard(app: FastifyInstance, deps: DashboardDeps): void {
  const files = new Map<string, { body: string; type: string }>();
  for (const [url, file] of Object.entries(ASSETS)) {
    files.set(url, { body: readFileSync(join(deps.publicDir, file), "utf8"), type: TYPES[file.split(".").pop()!]! });
  }
  for (const [url, f] of files) {
    app.get(url, async (_req, reply) => reply.header("content-type", f.type).header("content-security-policy", CSP).send(f.body));
  }

  app.get("/api/dashboard", async () => buildSnapshot(deps));

  const streams = new Set<() => void>();
  // An open event stream would hold fastify's close() until the client leaves.
  app.addHook("preClose", async () => {
    for (const end of [...streams]) end();
  });

  app.get("/api/live", (req, reply) => {
    reply.hijack();
    const res = reply.raw;
    res.writeHead(200, { "content-type": "text/event-stream; charset=utf-8", "cache-control": "no-store", connection: "keep-alive", "x-accel-buffering": "no" });
    let busy = false;
    const push = () => {
      if (busy) return;
      busy = true;
      buildSnapshot(deps)
        .then((s) => {
          if (!res.writableEnded) res.write(`event: snapshot\ndata: ${JSON.stringify(s)}\n\n`);
        })
        .catch((err: unknown) => deps.logger.warn({ err }, "dashboard snapshot failed"))
        .finally(() => {
          busy = false;
        });
    };
    res.write(`retry: ${LIVE_PERIOD_MS}\n\n`);
    push();
    const timer = setInterval(push, LIVE_PERIOD_MS);
    const end = () => {
      clearInterval(timer);
      streams.delete(end);
      if (!res.writableEnded) res.end();
    };
    streams.add(end);
    req.raw.on("close", end);
  });

  /** {server, from, step, cpu: [[iso, percent], ...], mem, hdd}; minutes 1-1440 (default 60). */
  app.get<{ Params: { server: string }; Querystring: { minutes?: string } }>("/api/history/:server", async (req, reply) => {
    const { server } = req.params;
    if (!deps.monitor.hasTarget(server)) return reply.code(404).send({ error: `unknown server ${JSON.stringify(server)}` });
    const minutes = Math.min(1440, Math.max(1, Math.round(Number(req.query.minutes ?? 60)) || 60));
    const windowS = minutes * 60;
    const step = Math.max(1, Math.ceil(windowS / MAX_POINTS));
    const from = new Date(deps.now().getTime() - windowS * 1000);
    try {
      const series = await sampleSeries(deps.db, hostId(server), ["cpu", "mem", "hdd"], from, step);
      return { server, from: from.toISOString(), step, ...series };
    } catch (e) {
      deps.logger.warn({ err: e }, "history query failed");
      return reply.code(503).send({ error: `cannot read the history: ${(e as Error).message}` });
    }
  });
}
