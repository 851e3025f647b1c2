/**
 * Texts the bot sends, laid out for a phone: short lines, one fact per line, no column
 * alignment (Telegram shows plain text in a proportional font), times in UTC like the API.
 * Pure functions of their arguments, so the unit tests pin the exact wording.
 */
import type { ResourceQuery } from "./bot-logic.ts";
import type { MonitorEvent } from "../alerting/events.ts";
import type { HostView, MetricView, StatusRow } from "../http/views.ts";
import type { SystemFacts } from "../probes/facts.ts";
import { suppressedBy, type ActiveSilence } from "../alerting/suppression.ts";

const HELD = { mute: "🔕 muted", ack: "👍 acknowledged", maintenance: "🛠 in maintenance" } as const;

/** Telegram's limit is 4096 characters per message; leave room for nothing to go wrong. */
export const MAX_MESSAGE = 4000;

/** 45s, 3m 20s, 2h 5m, 3d 4h: two units at most, enough for an outage. */
export function formatDuration(ms: number): string {
  const s = Math.max(0, Math.floor(ms / 1000));
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return s % 60 ? `${m}m ${s % 60}s` : `${m}m`;
  const h = Math.floor(m / 60);
  if (h < 24) return m % 60 ? `${h}h ${m % 60}m` : `${h}h`;
  const d = Math.floor(h / 24);
  return h % 24 ? `${d}d ${h % 24}h` : `${d}d`;
}

const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

/** 12:03:04 UTC today; 25 Nov 12:03 UTC on another day. */
export function formatTime(at: Date, now: Date): string {
  const iso = at.toISOString();
  if (iso.slice(0, 10) === now.toISOString().slice(0, 10)) return `${iso.slice(11, 19)} UTC`;
  return `${at.getUTCDate()} ${MONTHS[at.getUTCMonth()]} ${iso.slice(11, 16)} UTC`;
}

/** A ten-step bar: one glance tells 20% from 90%. */
export function bar(percent: number): string {
  const n = Math.max(0, Math.min(10, Math.round(percent / 10)));
  return "▓".repeat(n) + "░".repeat(10 - n);
}

export function percent(v: number): string {
  return `${v.toFixed(1)}%`;
}

const LABEL = { cpu: "CPU", ram: "RAM", hdd: "Disk" } as const;

function metricLine(label: string, m: MetricView): string {
  if (m.value === null) return `${label}: n/a${m.error && m.error !== "unreachable" ? ` (${m.error.slice(0, 80)})` : ""}`;
  return `${label}: ${percent(m.value)} ${bar(m.value)}`;
}

function unreachable(h: HostView, now: Date): string {
  return `🔴 unreachable${h.since ? ` for ${formatDuration(now.getTime() - h.since.getTime())} (since ${formatTime(h.since, now)})` : ""}`;
}

/** `/cpu`, `/ram`, `/system`, for one server or all of them. */
export function formatResource(q: ResourceQuery, hosts: readonly HostView[], now: Date): string {
  if (hosts.length === 0) return "No servers are configured (targets in the monitor's config).";
  let shown = hosts;
  if (q.target !== undefined) {
    const h = hosts.find((x) => x.name.toLowerCase() === q.target!.toLowerCase());
    if (!h) return `No server named "${q.target.slice(0, 64)}". Servers: ${hosts.map((x) => x.name).join(", ")}`;
    shown = [h];
  }
  const blocks = shown.map((h) => (q.kind === "system" ? systemBlock(h, now) : resourceBlock(q.kind, h, now)));
  const title = q.kind === "system" ? "🖥 System" : q.kind === "cpu" ? "⚙️ CPU" : "🧠 RAM";
  return [`${title} · ${formatTime(now, now)}`, ...blocks].join("\n\n");
}

const NOT_READ = "details not read yet";

/**
 * 0.52 0.58 0.59: two decimals, as uptime(1) prints them. The CPU probe's own reading (every
 * probe interval, when its output has the load line) is fresher than the facts' (every facts
 * interval), so it comes first.
 */
function loadLine(h: HostView, f: SystemFacts): string {
  const load = h.cpu.load ?? f.load;
  return load ? `Load: ${load.map((v) => v.toFixed(2)).join(" ")} (1, 5, 15 min)` : "Load: n/a";
}

/** The processor: model, cores, load (the source paper's "informasi detail processor"). */
function cpuFacts(h: HostView): string[] {
  const f = h.facts;
  if (!f) return [`Processor ${NOT_READ}`];
  return [`Model: ${f.cpuModel ?? "n/a"}`, `Cores: ${f.cores ?? "n/a"}`, loadLine(h, f)];
}

/** The installed system: OS, kernel, uptime (counted on from when it was read), processor. */
function systemFacts(h: HostView, now: Date): string[] {
  const f = h.facts;
  if (!f) return [`System ${NOT_READ}`];
  const uptime = f.uptimeSeconds === undefined ? "n/a" : formatDuration(f.uptimeSeconds * 1000 + Math.max(0, now.getTime() - f.at.getTime()));
  const cores = f.cores === undefined ? "" : ` (${f.cores} ${f.cores === 1 ? "core" : "cores"})`;
  return [`OS: ${f.os ?? "n/a"}`, `Kernel: ${f.kernel ?? "n/a"}`, `Uptime: ${uptime}`, `Processor: ${f.cpuModel ?? "n/a"}${cores}`, loadLine(h, f)];
}

function resourceBlock(kind: "cpu" | "ram", h: HostView, now: Date): string {
  if (h.reachable === false) return `${h.name}\n${unreachable(h, now)}`;
  const m = kind === "cpu" ? h.cpu : h.mem;
  const lines = [h.name, metricLine(LABEL[kind], m)];
  if (kind === "cpu") lines.push(...cpuFacts(h));
  if (m.at) lines.push(`measured ${formatTime(m.at, now)}`);
  else if (h.reachable === undefined) lines.push("not measured yet");
  return lines.join("\n");
}

function systemBlock(h: HostView, now: Date): string {
  const state = h.reachable === false ? unreachable(h, now) : h.reachable ? "🟢 reachable" : "⏳ not checked yet";
  const lines = [`${h.name} ${state}`];
  if (h.reachable !== false) {
    lines.push(metricLine("CPU", h.cpu), metricLine("RAM", h.mem), metricLine("Disk", h.hdd));
    const latest = [h.cpu.at, h.mem.at, h.hdd.at].filter((d): d is Date => d !== undefined).sort((a, b) => b.getTime() - a.getTime())[0];
    if (latest) lines.push(`measured ${formatTime(latest, now)}`);
    lines.push(...systemFacts(h, now));
  }
  if (h.services.length > 0) {
    lines.push("Services:");
    for (const s of h.services) lines.push(`${s.status === "On" ? "🟢" : "🔴"} ${s.name} ${s.status}`);
  }
  return lines.join("\n");
}

/** One silence on one line or two: what, which kind, until when, who. */
export function formatSilence(s: ActiveSilence, now: Date): string {
  if (s.kind === "ack") return `👍 ${s.component}\nacknowledged by ${s.by}, silent until it recovers`;
  const left = s.until ? ` until ${formatTime(s.until, now)} (${formatDuration(s.until.getTime() - now.getTime())} left)` : "";
  if (s.kind === "mute") return `🔕 ${s.component}\nmuted${left} by ${s.by}`;
  return `🛠 ${s.component}\n${s.by}${left}`;
}

function silenceSection(silences: readonly ActiveSilence[], now: Date): string[] {
  if (silences.length === 0) return [];
  return [`Silenced (${silences.length}): no alerts about these`, ...silences.map((s) => formatSilence(s, now))];
}

/** `/status`: every component, down ones first, then the silences in effect. */
export function formatStatus(rows: readonly StatusRow[], now: Date, silences: readonly ActiveSilence[] = []): string {
  if (rows.length === 0) return ["Nothing has been checked yet.", ...silenceSection(silences, now)].join("\n\n");
  const down = rows.filter((r) => r.state === "down").length;
  const head = `📋 Status · ${formatTime(now, now)}\n${down === 0 ? `All ${rows.length} UP` : `${down} DOWN of ${rows.length}`}`;
  const lines = rows.map((r) => {
    if (r.state === "down") {
      const since = r.since ? ` for ${formatDuration(now.getTime() - r.since.getTime())}, since ${formatTime(r.since, now)}` : "";
      const held = suppressedBy(r.component, silences);
      return `🔴 ${r.component}\nDOWN${since}${held ? `\n${HELD[held.kind]}` : ""}`;
    }
    if (r.state === "unknown") return `⏳ ${r.component}\nnot checked yet`;
    return `🟢 ${r.component}\nUP${r.since ? ` since ${formatTime(r.since, now)}` : ""}`;
  });
  return [head, ...lines, ...silenceSection(silences, now)].join("\n\n");
}

export interface DownItem {
  component: string;
  since: Date;
  detail: string;
}

/** The reminder sent every alert interval while something is down. */
export function formatDownAlert(items: readonly DownItem[], now: Date): string {
  const block = (d: DownItem) =>
    [`🔴 ${d.component}`, `down for ${formatDuration(now.getTime() - d.since.getTime())} (since ${formatTime(d.since, now)})`, ...(d.detail ? [d.detail.slice(0, 200)] : [])].join("\n");
  if (items.length === 1) return `🚨 DOWN\n${block(items[0]!)}`;
  return [`🚨 ${items.length} components DOWN`, ...items.map(block)].join("\n\n");
}

/** gone: the outage ended because the component left the config or its replica was scaled away. */
export function formatRecovery(component: string, since: Date, at: Date, now: Date, gone = false): string {
  const downtime = `after ${formatDuration(at.getTime() - since.getTime())} down (since ${formatTime(since, now)})`;
  if (gone) return `➖ NO LONGER MONITORED\n${component}\n${downtime}; removed from the config or scaled away`;
  return `✅ BACK UP\n${component}\n${downtime}`;
}

/** A threshold crossed or cleared: told once, not repeated. */
export function formatThreshold(e: MonitorEvent, now: Date): string {
  const value = e.value === null ? "" : ` ${Number.isInteger(e.value) ? e.value : e.value.toFixed(2)}`;
  if (e.kind === "threshold") return `⚠️ HIGH\n${e.component}${value}\n${e.detail}`;
  return `✅ normal again\n${e.component}${value}\nafter ${formatDuration(e.at.getTime() - e.since.getTime())} (high since ${formatTime(e.since, now)})`;
}

/** Splits at line breaks (or hard, inside an overlong line) into messages Telegram accepts. */
export function chunk(text: string, max = MAX_MESSAGE): string[] {
  if (text.length <= max) return [text];
  const out: string[] = [];
  let current = "";
  for (const line of text.split("\n")) {
    for (let piece = line; ; ) {
      const room = current ? max - current.length - 1 : max;
      if (piece.length <= room) {
        current = current ? `${current}\n${piece}` : piece;
        break;
      }
      if (current) {
        out.push(current);
        current = "";
        continue;
      }
      out.push(piece.slice(0, max));
      piece = piece.slice(max);
      if (!piece) break;
    }
  }
  if (current) out.push(current);
  return out;
}
