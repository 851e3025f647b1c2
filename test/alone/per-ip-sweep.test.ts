/**
 * The per-IP limit under a source-port sweep (docs/protocol.md "Security", limits per IP): one
 * datagram from every source port of 127.0.0.2, from a process of its own, while a client on
 * 127.0.0.1 chats. Runs alone (test/alone/jest.config.cjs): it asserts the chatting client's p99.
 */
import { spawn } from "node:child_process";
import { join } from "node:path";
import { PesanClient } from "@pesan/client";
import { sleep } from "../support/e2e.ts";
import { useCluster } from "../support/fixture.ts";

const fx = useCluster("per_ip", { gateways: 1, routers: 1, env: { PLAIN_SESSIONS: "none" } });

async function library(user: string, password: string): Promise<PesanClient> {
  const c = new PesanClient({ servers: [fx.address], heartbeatMs: 0, capAck: true, recvBufferSize: 4 * 1024 * 1024 });
  await c.start();
  await c.register(user, password);
  await c.login(user, password);
  return c;
}

test("the per-IP limit: 65,000 datagrams from every source port of 127.0.0.2 are held as one IP while a client on 127.0.0.1 chats with p99 under 100 ms", async () => {
  const a = await library("ip_a", "secret1");
  const b = await library("ip_b", "secret1");
  try {
    const got = new Set<string>();
    b.on("message", (m) => got.add(m.text));
    const [host, port] = [fx.address.slice(0, fx.address.lastIndexOf(":")), fx.address.slice(fx.address.lastIndexOf(":") + 1)];
    const gw = fx.cluster.gateways[0]!;
    const limitedBefore = await ipLimited(gw);
    // The sweep runs in its own process, so its work never delays this process's measurements.
    const sweep = spawn(process.execPath, [join(__dirname, "..", "support", "port-sweep.ts"), "127.0.0.2", host, port, "13000", "SERVERS"], { stdio: ["ignore", "pipe", "inherit"] });
    let out = "";
    sweep.stdout.on("data", (c: Buffer) => (out += c.toString()));
    const exited = new Promise<number | null>((resolve) => sweep.once("exit", resolve));
    let running = true;
    void exited.then(() => (running = false));
    const latencies: number[] = [];
    const order: Array<{ i: number; ms: number }> = [];
    let i = 0;
    while (running) {
      const t0 = performance.now();
      const r = await a.send("ip_b", `during ${i++}`);
      latencies.push(performance.now() - t0);
      order.push({ i: i - 1, ms: latencies.at(-1)! });
      expect(r.raw).toMatch(/OK SENT \S+ DELIVERED$/);
      await sleep(20);
    }
    expect(await exited).toBe(0);
    const sweepResult = JSON.parse(out) as { sent: number; skipped: number; ms: number };
    expect(sweepResult.sent).toBeGreaterThanOrEqual(65_000);
    const deadline = Date.now() + 3000;
    while (got.size < i && Date.now() < deadline) await sleep(50);
    expect(got.size).toBe(i);
    // Held as one IP: all but the IP's burst and rate were dropped at the gateway.
    const limited = (await ipLimited(gw)) - limitedBefore;
    const allowed = 1000 + 500 * Math.ceil(sweepResult.ms / 1000);
    expect(limited).toBeGreaterThanOrEqual(sweepResult.sent - allowed);
    latencies.sort((x, y) => x - y);
    const p99 = latencies[Math.min(latencies.length - 1, Math.floor(latencies.length * 0.99))]!;
    const slowest = latencies.slice(-4).map((x) => x.toFixed(0)).join(", ");
    console.log(`slowest SENDs: ${slowest} ms; in order of sending, the slow ones were #${order.filter((x) => x.ms >= latencies.at(-4)!).map((x) => x.i).join(", #")}`);
    console.log(`per-IP sweep: ${sweepResult.sent} datagrams in ${sweepResult.ms} ms, ${limited} dropped as ip_limited; ${latencies.length} SENDs meanwhile, p50 ${latencies[latencies.length >> 1]!.toFixed(1)} ms, p99 ${p99.toFixed(1)} ms`);
    expect(latencies.length).toBeGreaterThanOrEqual(100);
    expect(p99).toBeLessThan(100);
  } finally {
    await a.close();
    await b.close();
  }
}, 60_000);

/** Datagrams the gateway dropped under the per-IP limit (addresses without a session). */
async function ipLimited(gw: (typeof fx.cluster.gateways)[number]): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${gw.httpPort}/metrics`)).text();
  const m = /pesan_gateway_datagrams_received_total\{[^}]*outcome="ip_limited"[^}]*\} (\d+)/.exec(text);
  return m ? Number(m[1]) : 0;
}
