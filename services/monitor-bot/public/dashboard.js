// pesan monitor dashboard. Server-sent events from /api/live bring a snapshot every 2 s; if the
// stream breaks (a proxy that buffers, a replica that died), /api/dashboard is polled every 2 s
// until the stream is back. Charts come from /api/history/:server, drawn as inline SVG.
"use strict";

const PERIOD_MS = 2000;
const CHART_MINUTES = 30;
const CHART_REFRESH_MS = 10000;

const $ = (id) => document.getElementById(id);
const esc = (s) => String(s ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
const time = (iso) => (iso ? new Date(iso).toISOString().slice(11, 19) + " UTC" : "–");
const num = (v, digits = 1) => (v === null || v === undefined ? "–" : Number(v).toFixed(digits));

function ago(iso, nowIso) {
  const s = Math.max(0, Math.round((new Date(nowIso) - new Date(iso)) / 1000));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m ${s % 60}s`;
  return `${Math.floor(s / 3600)}h ${Math.floor((s % 3600) / 60)}m`;
}

function level(v) {
  return v >= 90 ? "bad" : v >= 75 ? "warn" : "ok";
}

// A ring: the arc's length is the percentage; grey with a dash when there is no value.
/** 8589934592 -> "8.0 GiB" */
function bytes(n) {
  const units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i += 1;
  }
  return `${n.toFixed(i === 0 ? 0 : 1)} ${units[i]}`;
}

/** label: the gauge's name; note: a small line under it (a size, the load). */
function gauge(label, v, note) {
  const r = 30;
  const c = 2 * Math.PI * r;
  const has = v !== null && v !== undefined;
  // A zero-length arc with round caps would still draw a dot.
  const arc = has && v >= 0.5 ? `<circle class="arc ${level(v)}" cx="40" cy="40" r="${r}" fill="none" stroke-width="9" stroke-linecap="round"
      stroke-dasharray="${((Math.min(100, v) / 100) * c).toFixed(1)} ${c.toFixed(1)}" transform="rotate(-90 40 40)"/>` : "";
  return `<div class="gauge" data-metric="${esc(label)}">
    <svg width="80" height="80" viewBox="0 0 80 80" role="img" aria-label="${esc(label)} ${has ? num(v) + "%" : "unknown"}">
      <circle class="track" cx="40" cy="40" r="${r}" fill="none" stroke-width="9"/>${arc}
      <text x="40" y="45" text-anchor="middle">${has ? Math.round(v) + "%" : "–"}</text>
    </svg><div class="label">${esc(label)}${note ? ` <span class="total">${esc(note)}</span>` : ""}</div></div>`;
}

function spanLabel(ms) {
  const s = Math.round(ms / 1000);
  return s < 120 ? `last ${s}s` : `last ${Math.round(s / 60)} min`;
}

// Lines for cpu, mem and hdd; y is 0-100%. x runs from the oldest point (at most the window
// back) to now, so a young monitor's few minutes of history fill the chart instead of a sliver.
function chart(series) {
  const W = 300, H = 64;
  const legend = (label) =>
    `<div class="legend"><span><i class="k-cpu"></i>CPU</span><span><i class="k-mem"></i>RAM</span><span><i class="k-hdd"></i>Disk</span><span>${esc(label)}</span></div>`;
  const y = (v) => (H - 2 - (v / 100) * (H - 4)).toFixed(1);
  const grid = [25, 50, 75].map((p) => `<line class="grid" x1="0" x2="${W}" y1="${y(p)}" y2="${y(p)}" vector-effect="non-scaling-stroke"/>`).join("");
  const points = series ? ["cpu", "mem", "hdd"].flatMap((m) => series[m] || []) : [];
  if (points.length === 0) return `<svg viewBox="0 0 ${W} ${H}" preserveAspectRatio="none">${grid}</svg>${legend("no history yet")}`;
  // Points are bucket starts, so the newest may be a bucket behind now: end at the newest.
  const times = points.map(([t]) => new Date(t).getTime());
  const to = Math.max(...times);
  const from = Math.min(to - 10000, Math.max(new Date(series.from).getTime(), Math.min(...times)));
  const x = (t) => (((new Date(t).getTime() - from) / (to - from)) * W).toFixed(1);
  const lines = ["cpu", "mem", "hdd"].map((m) => {
    const pts = (series[m] || []).map(([t, v]) => `${x(t)},${y(v)}`);
    return pts.length ? `<polyline class="line-${m}" fill="none" stroke-width="1.5" vector-effect="non-scaling-stroke" points="${pts.join(" ")}"/>` : "";
  });
  return `<svg viewBox="0 0 ${W} ${H}" preserveAspectRatio="none" aria-label="${spanLabel(to - from)}">${grid}${lines.join("")}</svg>${legend(spanLabel(to - from))}`;
}

const history = new Map(); // server -> {series, fetchedAt}

async function refreshHistory(server) {
  const h = history.get(server) || {};
  // Sooner while any line has next to nothing to draw (a monitor that just started): RAM may
  // have three samples while CPU, whose command takes longer, has one, and waiting the long
  // refresh then left a one-point CPU line for a minute.
  const sparse = !h.series || ["cpu", "mem", "hdd"].some((m) => (h.series[m] || []).length < 3);
  if (h.loading || (h.fetchedAt && Date.now() - h.fetchedAt < (sparse ? PERIOD_MS : CHART_REFRESH_MS))) return;
  h.loading = true;
  history.set(server, h);
  try {
    const res = await fetch(`/api/history/${encodeURIComponent(server)}?minutes=${CHART_MINUTES}`, { cache: "no-store" });
    if (res.ok) {
      h.series = await res.json();
      const el = document.querySelector(`.card[data-server="${CSS.escape(server)}"] .chart-svg`);
      if (el) el.innerHTML = chart(h.series);
    }
  } catch {
    // the next refresh tries again
  } finally {
    h.loading = false;
    h.fetchedAt = Date.now();
  }
}

function serverCard(s, now) {
  const state = s.reachable === false ? "unreachable" : s.reachable ? "reachable" : "unknown";
  const pill = state === "unreachable" ? `UNREACHABLE ${s.since ? ago(s.since, now) : ""}` : state === "reachable" ? "UP" : "CHECKING";
  const why = state === "unreachable" ? `<div class="why">${esc(s.error || "cannot connect")}${s.since ? ` · since ${time(s.since)}` : ""}</div>` : "";
  const chips = s.services.map((v) => `<span class="chip${v.status === "Off" ? " off" : ""}" title="${esc(v.status)} at ${time(v.updatetime)}">${esc(v.name)} ${esc(v.status)}</span>`).join("");
  return `<div class="card ${state}" data-server="${esc(s.name)}" data-state="${state}">
    <div class="card-head"><h3>${esc(s.name)}</h3><span class="pill">${esc(pill)}</span></div>${why}
    <div class="gauges">${gauge("CPU", s.cpu, s.load ? `load ${s.load.map((n) => n.toFixed(2)).join(" ")}` : "")}${gauge("RAM", s.mem, s.memTotal ? `of ${bytes(s.memTotal)}` : "")}${gauge("Disk", s.hdd, s.hddTotal ? `of ${bytes(s.hddTotal)}` : "")}</div>
    ${chips ? `<div class="chips">${chips}</div>` : ""}
    <div class="chart"><div class="chart-svg">${chart(history.get(s.name)?.series)}</div></div>
    <div class="meta">last reading ${time(s.updatetime)}</div>
  </div>`;
}

function rows(tbody, html, cols, empty) {
  tbody.innerHTML = html.length ? html.join("") : `<tr><td class="empty" colspan="${cols}">${esc(empty)}</td></tr>`;
}

function render(snap) {
  const now = snap.at;
  $("updated").textContent = `updated ${time(now)} · ${snap.instance}`;
  const down = snap.down.length;
  const held = snap.down.filter((d) => d.silenced).length;
  const badge = $("down-count");
  badge.textContent = down === 0 ? "all up" : `${down} down${held ? ` (${held} silenced)` : ""}`;
  badge.className = `badge ${down === 0 ? "ok" : "bad"}`;
  document.title = down === 0 ? "pesan monitor" : `(${down} down) pesan monitor`;

  $("servers").innerHTML = snap.servers.length ? snap.servers.map((s) => serverCard(s, now)).join("") : `<p class="muted">No servers in the config (targets: local or over SSH).</p>`;
  for (const s of snap.servers) void refreshHistory(s.name);

  const svc = [];
  for (const s of snap.servers) {
    for (const v of s.services) {
      const off = v.status !== "On";
      svc.push(`<tr class="${off ? "bad" : ""}"><td>${esc(s.name)}</td><td>${esc(v.name)}</td><td class="status ${off ? "bad" : "ok"}">${esc(v.status)}</td><td>${time(v.updatetime)}</td></tr>`);
    }
  }
  rows($("services").tBodies[0], svc, 4, "No services configured.");

  rows(
    $("messaging").tBodies[0],
    snap.messaging.map((m) => {
      const bad = m.status !== "OK";
      return `<tr class="${bad ? "bad" : ""}"><td>${esc(m.name)}</td><td class="status ${bad ? "bad" : "ok"}" title="${esc(m.detail)}">${esc(m.status)}</td><td>${num(m.delay, 3)}</td><td>${num(m.expired, 0)}</td><td>${time(m.updatetime)}</td></tr>`;
    }),
    5,
    "No messaging probes.",
  );

  rows(
    $("components").tBodies[0],
    snap.components.map((c) => {
      const bad = c.status !== "up";
      return `<tr class="${bad ? "bad" : ""}"><td>${esc(c.name)}</td><td>${esc(c.address ?? "(unresolved)")}</td><td>${esc(c.type)}</td><td class="status ${bad ? "bad" : "ok"}">${bad ? "DOWN" : "UP"}</td><td>${num(c.latency, 3)}</td><td class="detail" title="${esc(c.detail)}">${esc(c.detail)}</td></tr>`;
    }),
    6,
    "No probed components.",
  );

  // Silences: what is held, until when, by whom, and which of the down components it covers.
  const kinds = { mute: "muted", ack: "acknowledged", maintenance: "maintenance" };
  const silences = snap.silences || [];
  rows(
    $("silences").tBodies[0],
    silences.map((s) => {
      const covered = s.down || [];
      // A window may end days from now: then the date counts more than the seconds.
      const sameDay = s.until && s.until.slice(0, 10) === now.slice(0, 10);
      const end = s.until ? (sameDay ? time(s.until) : `${s.until.slice(0, 16).replace("T", " ")} UTC`) : "";
      const until = s.until ? `${end} (${ago(now, s.until)} left)` : "until it recovers";
      return `<tr class="silence ${esc(s.kind)}" data-component="${esc(s.component)}" data-kind="${esc(s.kind)}"><td>${esc(s.component)}</td><td class="kind">${esc(kinds[s.kind] || s.kind)}</td><td>${esc(until)}</td><td>${esc(s.by)}</td><td class="detail" title="${esc(covered.join(", "))}">${covered.length ? esc(covered.join(", ")) : "–"}</td></tr>`;
    }),
    5,
    "Nothing is silenced: every alert goes out.",
  );

  const u = snap.userstats;
  const labels = [["today", "Today"], ["yesterday", "Yesterday"], ["week", "This week"], ["month", "This month"], ["total", "Total"]];
  $("userstats").innerHTML = u
    ? labels.map(([k, l]) => `<div class="stat" data-period="${k}"><b>${esc(u[k])}</b><span>${l}</span></div>`).join("")
    : `<p class="muted">User statistics unavailable${snap.userstatsError ? `: ${esc(snap.userstatsError)}` : ""}.</p>`;

  $("footer").textContent = snap.telegram ? `Telegram bot: ${snap.telegram.mode}, this replica ${snap.telegram.leader ? "sends the alerts" : "is standing by"}` : "Telegram bot: off";
}

function setConn(state, text) {
  const el = $("conn");
  el.className = `conn ${state}`;
  el.textContent = text;
}

let pollTimer;
async function poll() {
  try {
    const res = await fetch("/api/dashboard", { cache: "no-store" });
    if (!res.ok) throw new Error(`HTTP ${res.status}`);
    render(await res.json());
    setConn("polling", "polling");
  } catch {
    setConn("offline", "offline");
  }
}

function startPolling() {
  if (pollTimer) return;
  void poll();
  pollTimer = setInterval(poll, PERIOD_MS);
}

function stopPolling() {
  clearInterval(pollTimer);
  pollTimer = undefined;
}

function connect() {
  if (!("EventSource" in window)) return startPolling();
  const es = new EventSource("/api/live");
  es.addEventListener("snapshot", (ev) => {
    stopPolling();
    setConn("live", "live");
    render(JSON.parse(ev.data));
  });
  // EventSource reconnects by itself; meanwhile the page keeps updating by polling.
  es.onerror = () => startPolling();
}

connect();
