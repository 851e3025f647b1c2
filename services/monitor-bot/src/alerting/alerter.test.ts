/**
 * The alert loop when its own dependencies fail: the members cannot be read (Postgres away,
 * perhaps the very outage being alerted about) or the first read fails outright. Real Monitor,
 * Outbox and state; only Telegram's sendMessage is replaced by a recorder. And maintenance windows
 * holding alerts while the silence store is unreadable.
 */
import { PgDb } from "@pesan/shared/db";
import { createLogger } from "@pesan/shared/observability";
import { Alerter } from "./alerter.ts";
import { parseMonitorConfig } from "../config/config.ts";
import { LocalLease } from "./lease.ts";
import { Monitor } from "../monitor.ts";
import { Outbox } from "../telegram/outbox.ts";
import { MemoryBotState } from "./shared-state.ts";
import { SilenceStore, Silences } from "./silence-store.ts";

const INTERVAL = 100;
const logger = createLogger("alerter-test", "silent");

function setUp(recipients: () => Promise<number[]>) {
  const config = parseMonitorConfig({ database: { url: "postgres://x@127.0.0.1:1/x" }, components: [{ type: "http", name: "web", url: "http://127.0.0.1:1/", interval: 100 }] });
  const monitor = new Monitor({ config, logger, now: () => new Date() });
  const sent: Array<{ chat: number; text: string; at: number }> = [];
  const outbox = new Outbox({ send: async (chat, text) => void sent.push({ chat, text, at: Date.now() }), logger });
  const alerter = new Alerter({ monitor, lease: new LocalLease(), outbox, state: new MemoryBotState(), recipients, logger, now: () => new Date() }, { intervalMs: INTERVAL });
  const down = () => monitor.component(config.components[0]!, undefined, false, 1, "connect ECONNREFUSED");
  return { alerter, outbox, sent, down };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

test("the members cannot be read any more: the ones last read keep getting every alert", async () => {
  let dbUp = true;
  const { alerter, outbox, sent, down } = setUp(async () => {
    if (!dbUp) throw new Error("connect ECONNREFUSED 127.0.0.1:5432");
    return [1, 2];
  });
  await alerter.start();
  try {
    down();
    await sleep(INTERVAL * 1.5);
    dbUp = false;
    const from = sent.length;
    await sleep(INTERVAL * 5);
    const later = sent.slice(from).filter((m) => m.text.startsWith("🚨"));
    expect(new Set(later.map((m) => m.chat))).toEqual(new Set([1, 2]));
    expect(later.filter((m) => m.chat === 1).length).toBeGreaterThanOrEqual(3);
  } finally {
    await alerter.close();
    await outbox.close();
  }
});

test("a tick that fails (no member list ever read) does not stop the loop: alerts start once it can read", async () => {
  let calls = 0;
  const { alerter, outbox, sent, down } = setUp(async () => {
    calls++;
    if (calls <= 3) throw new Error("connect ECONNREFUSED 127.0.0.1:5432");
    return [7];
  });
  await alerter.start();
  try {
    down();
    // No further event: only the loop's own rescheduling can bring the alert.
    const deadline = Date.now() + 5000;
    while (!sent.some((m) => m.chat === 7 && m.text.startsWith("🚨")) && Date.now() < deadline) await sleep(20);
    expect(sent.filter((m) => m.chat === 7 && m.text.startsWith("🚨")).length).toBeGreaterThanOrEqual(1);
    expect(calls).toBeGreaterThan(3);
  } finally {
    await alerter.close();
    await outbox.close();
  }
});

test("maintenance windows hold down and threshold alerts of what they name, even while the silence store cannot be read", async () => {
  const now = Date.now();
  const config = parseMonitorConfig({
    database: { url: "postgres://x@127.0.0.1:1/x" },
    components: [
      { type: "http", name: "held", url: "http://127.0.0.1:1/" },
      { type: "http", name: "told", url: "http://127.0.0.1:2/" },
    ],
    messaging: ["m1", "m2"].map((name) => ({ name, gateway: "127.0.0.1:1", user: "probe", password: "secret1", thresholds: { delay: { high: 1 } } })),
    maintenance: [{ components: ["http:held*", "messaging:m1"], from: new Date(now - 60_000).toISOString(), to: new Date(now + 60_000).toISOString() }],
  });
  const monitor = new Monitor({ config, logger, now: () => new Date() });
  const sent: string[] = [];
  const outbox = new Outbox({ send: async (_chat, text) => void sent.push(text), logger });
  // A real pool to a port where nothing listens: mutes and acks cannot be read, the config's windows still apply.
  const db = new PgDb("postgres://x@127.0.0.1:1/x", { max: 1 });
  const silences = new Silences(new SilenceStore(db, logger, () => new Date()), config.maintenance);
  const alerter = new Alerter({ monitor, lease: new LocalLease(), outbox, state: new MemoryBotState(), recipients: async () => [1], logger, now: () => new Date(), silences }, { intervalMs: INTERVAL });
  await alerter.start();
  try {
    for (const c of config.components) monitor.component(c, undefined, false, 1, "refused");
    monitor.messaging("m1", "OK", 5000, 30_000, 1);
    monitor.messaging("m2", "OK", 5000, 30_000, 1);
    await sleep(INTERVAL * 4);
    expect(sent.filter((t) => t.includes("http:told")).length).toBeGreaterThanOrEqual(2);
    expect(sent.filter((t) => t.includes("http:held"))).toEqual([]);
    expect(sent.filter((t) => t.startsWith("⚠️ HIGH"))).toEqual([expect.stringContaining("messaging:m2/delay")]);
  } finally {
    await alerter.close();
    await outbox.close();
    await db.close();
  }
});
