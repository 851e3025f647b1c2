import { bar, chunk, formatDownAlert, formatDuration, formatRecovery, formatResource, formatStatus, formatThreshold, formatTime } from "./bot-format.ts";
import type { HostView } from "../http/views.ts";

const NOW = new Date("2026-11-25T12:00:00.000Z");
const ago = (ms: number) => new Date(NOW.getTime() - ms);
const metric = (value: number | null, at: Date | undefined = ago(3000), error?: string) => ({ value, at, error });
const web1: HostView = {
  name: "web1",
  reachable: true,
  since: undefined,
  cpu: metric(37),
  mem: metric(11.36),
  hdd: metric(5),
  services: [
    { name: "nginx", status: "On", at: ago(1000) },
    { name: "mysql", status: "Off", at: ago(1000) },
  ],
  facts: undefined,
};
const db1: HostView = { name: "db1", reachable: false, since: ago(130_000), cpu: metric(null), mem: metric(null), hdd: metric(null), services: [], facts: undefined };
const facts = {
  cpuModel: "AMD EPYC 7B13",
  cores: 4,
  load: [0.5, 1.25, 2] as [number, number, number],
  os: "Debian GNU/Linux 12 (bookworm)",
  kernel: "Linux 6.1.0-18-amd64",
  uptimeSeconds: 90_000,
  at: ago(60_000),
  errors: {},
};

test("durations and times", () => {
  expect([0, 45_000, 60_000, 200_000, 3_600_000, 7_500_000, 90_000_000].map(formatDuration)).toEqual(["0s", "45s", "1m", "3m 20s", "1h", "2h 5m", "1d 1h"]);
  expect(formatTime(ago(5000), NOW)).toBe("11:59:55 UTC");
  expect(formatTime(new Date("2026-11-24T09:30:00Z"), NOW)).toBe("24 Nov 09:30 UTC");
  expect(bar(0)).toBe("░░░░░░░░░░");
  expect(bar(37)).toBe("▓▓▓▓░░░░░░");
  expect(bar(150)).toBe("▓▓▓▓▓▓▓▓▓▓");
});

test("/ram for one server: value, bar, when", () => {
  expect(formatResource({ kind: "ram", target: "WEB1" }, [web1, db1], NOW)).toBe("🧠 RAM · 12:00:00 UTC\n\nweb1\nRAM: 11.4% ▓░░░░░░░░░\nmeasured 11:59:57 UTC");
});

test("/cpu for all: an unreachable server says since when, no stale number", () => {
  const text = formatResource({ kind: "cpu", target: undefined }, [web1, db1], NOW);
  expect(text).toContain("web1\nCPU: 37.0% ▓▓▓▓░░░░░░");
  expect(text).toContain("db1\n🔴 unreachable for 2m 10s (since 11:57:50 UTC)");
  for (const line of text.split("\n")) expect(line.length).toBeLessThanOrEqual(48);
});

test("/system: every metric and service; unknown server named", () => {
  const text = formatResource({ kind: "system", target: "web1" }, [web1, db1], NOW);
  expect(text).toBe(
    ["🖥 System · 12:00:00 UTC", "", "web1 🟢 reachable", "CPU: 37.0% ▓▓▓▓░░░░░░", "RAM: 11.4% ▓░░░░░░░░░", "Disk: 5.0% ▓░░░░░░░░░", "measured 11:59:57 UTC", "System details not read yet", "Services:", "🟢 nginx On", "🔴 mysql Off"].join(
      "\n",
    ),
  );
  expect(formatResource({ kind: "system", target: "nope" }, [web1, db1], NOW)).toBe('No server named "nope". Servers: web1, db1');
  expect(formatResource({ kind: "cpu", target: undefined }, [], NOW)).toMatch(/No servers are configured/);
});

test("/cpu: model, cores, load average and usage", () => {
  expect(formatResource({ kind: "cpu", target: "web1" }, [{ ...web1, facts }], NOW)).toBe(
    ["⚙️ CPU · 12:00:00 UTC", "", "web1", "CPU: 37.0% ▓▓▓▓░░░░░░", "Model: AMD EPYC 7B13", "Cores: 4", "Load: 0.50 1.25 2.00 (1, 5, 15 min)", "measured 11:59:57 UTC"].join("\n"),
  );
  expect(formatResource({ kind: "cpu", target: "web1" }, [web1], NOW)).toContain("CPU: 37.0% ▓▓▓▓░░░░░░\nProcessor details not read yet\n");
  // A fact that could not be read says so, the others still show.
  const partial = { ...facts, cpuModel: undefined, load: undefined };
  expect(formatResource({ kind: "cpu", target: "web1" }, [{ ...web1, facts: partial }], NOW)).toContain("Model: n/a\nCores: 4\nLoad: n/a\n");
  // The CPU probe's load (read with every CPU sample) is fresher than the facts': it wins.
  const live = { ...web1, cpu: { ...metric(37), load: [3, 2.5, 1.75] as [number, number, number] }, facts };
  expect(formatResource({ kind: "cpu", target: "web1" }, [live], NOW)).toContain("\nLoad: 3.00 2.50 1.75 (1, 5, 15 min)\n");
  expect(formatResource({ kind: "system", target: "web1" }, [live], NOW)).toContain("\nLoad: 3.00 2.50 1.75 (1, 5, 15 min)\n");
  expect(formatResource({ kind: "cpu", target: "web1" }, [{ ...live, facts: partial }], NOW)).toContain("\nLoad: 3.00 2.50 1.75 (1, 5, 15 min)\n");
});

test("/system: OS, kernel, uptime counted on from the reading, processor, then services", () => {
  const text = formatResource({ kind: "system", target: "web1" }, [{ ...web1, facts }], NOW);
  expect(text).toContain(
    [
      "Disk: 5.0% ▓░░░░░░░░░",
      "measured 11:59:57 UTC",
      "OS: Debian GNU/Linux 12 (bookworm)",
      "Kernel: Linux 6.1.0-18-amd64",
      // 90 000 s when read a minute ago: 1d 1h 1m.
      "Uptime: 1d 1h",
      "Processor: AMD EPYC 7B13 (4 cores)",
      "Load: 0.50 1.25 2.00 (1, 5, 15 min)",
      "Services:",
    ].join("\n"),
  );
  // An unreachable server shows no stale facts.
  expect(formatResource({ kind: "system", target: "db1" }, [{ ...db1, facts }], NOW)).not.toContain("OS:");
});

test("/status: down first with how long, up with since when", () => {
  const text = formatStatus(
    [
      { component: "http:web@10.0.0.5:80", state: "down", since: ago(80_000), detail: "refused" },
      { component: "host:web1", state: "up", since: new Date("2026-11-24T09:00:00Z"), detail: "" },
      { component: "messaging:msg1", state: "up", since: undefined, detail: "" },
      { component: "host:new", state: "unknown", since: undefined, detail: "" },
    ],
    NOW,
  );
  expect(text).toBe(
    [
      "📋 Status · 12:00:00 UTC\n1 DOWN of 4",
      "🔴 http:web@10.0.0.5:80\nDOWN for 1m 20s, since 11:58:40 UTC",
      "🟢 host:web1\nUP since 24 Nov 09:00 UTC",
      "🟢 messaging:msg1\nUP",
      "⏳ host:new\nnot checked yet",
    ].join("\n\n"),
  );
});

test("alerts: down (one or several), back up, thresholds", () => {
  expect(formatDownAlert([{ component: "http:web@10.0.0.5:80", since: ago(30_000), detail: "connect ECONNREFUSED" }], NOW)).toBe(
    "🚨 DOWN\n🔴 http:web@10.0.0.5:80\ndown for 30s (since 11:59:30 UTC)\nconnect ECONNREFUSED",
  );
  expect(formatDownAlert([{ component: "a", since: ago(1000), detail: "" }, { component: "b", since: ago(2000), detail: "" }], NOW)).toMatch(/^🚨 2 components DOWN\n\n🔴 a\n/);
  expect(formatRecovery("host:db1", ago(200_000), ago(5000), NOW)).toBe("✅ BACK UP\nhost:db1\nafter 3m 15s down (since 11:56:40 UTC)");
  expect(formatRecovery("http:router@10.0.0.7:9200", ago(60_000), NOW, NOW, true)).toBe(
    "➖ NO LONGER MONITORED\nhttp:router@10.0.0.7:9200\nafter 1m down (since 11:59:00 UTC); removed from the config or scaled away",
  );
  const e = { component: "host:web1/cpu", kind: "threshold" as const, at: NOW, since: NOW, status: "high", value: 95.123, detail: "95.123 >= 90", message: "" };
  expect(formatThreshold(e, NOW)).toBe("⚠️ HIGH\nhost:web1/cpu 95.12\n95.123 >= 90");
  expect(formatThreshold({ ...e, kind: "clear", since: ago(60_000), value: 50 }, NOW)).toBe("✅ normal again\nhost:web1/cpu 50\nafter 1m (high since 11:59:00 UTC)");
});

test("chunk: at line breaks, hard inside an overlong line, nothing lost", () => {
  expect(chunk("short")).toEqual(["short"]);
  const lines = Array.from({ length: 50 }, (_, i) => `line ${i} ${"x".repeat(20)}`);
  const parts = chunk(lines.join("\n"), 200);
  for (const p of parts) expect(p.length).toBeLessThanOrEqual(200);
  expect(parts.join("\n")).toBe(lines.join("\n"));
  expect(chunk("y".repeat(450), 200)).toEqual(["y".repeat(200), "y".repeat(200), "y".repeat(50)]);
});

test("/status lists the silences in effect and marks a held outage", () => {
  const text = formatStatus(
    [
      { component: "http:web@10.0.0.5:80", state: "down", since: ago(80_000), detail: "refused" },
      { component: "host:web1", state: "up", since: undefined, detail: "" },
    ],
    NOW,
    [
      { component: "http:web*", kind: "mute", until: new Date(NOW.getTime() + 30 * 60_000), by: "Ani" },
      { component: "postgres:pg@10.0.0.9:5432", kind: "ack", until: null, by: "Budi" },
      { component: "*", kind: "maintenance", until: new Date(NOW.getTime() + 3_600_000), by: "maintenance backup" },
    ],
  );
  expect(text).toContain("🔴 http:web@10.0.0.5:80\nDOWN for 1m 20s, since 11:58:40 UTC\n🔕 muted");
  expect(text).toContain(
    [
      "Silenced (3): no alerts about these",
      "🔕 http:web*\nmuted until 12:30:00 UTC (30m left) by Ani",
      "👍 postgres:pg@10.0.0.9:5432\nacknowledged by Budi, silent until it recovers",
      "🛠 *\nmaintenance backup until 13:00:00 UTC (1h left)",
    ].join("\n\n"),
  );
  expect(formatStatus([{ component: "host:web1", state: "up", since: undefined, detail: "" }], NOW)).not.toContain("Silenced");
});
