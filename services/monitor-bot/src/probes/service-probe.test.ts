/**
 * Services checked over the network, against real local listeners, with the resolver injected
 * so one name stands for several loopback addresses; the clock is the test's, so forgetAfter
 * needs no waiting. (test/monitor-local.test.ts does the same through a real DNS server.)
 */
import { createServer, type Server } from "node:net";
import { createLogger } from "@pesan/shared/observability";
import { parseMonitorConfig, type NetworkService } from "../config/config.ts";
import type { MonitorEvent } from "../alerting/events.ts";
import { Monitor } from "../monitor.ts";
import { NetworkServiceProbe } from "./service-probe.ts";
import type { Resolver } from "./component-probe.ts";

const logger = createLogger("service-probe-test", "silent");
let clock = Date.parse("2026-11-23T10:00:00.000Z");
const now = () => new Date(clock);
const servers: Server[] = [];

async function listen(host: string, port = 0): Promise<number> {
  const s = createServer((c) => c.destroy());
  await new Promise<void>((r) => s.listen(port, host, () => r()));
  servers.push(s);
  return (s.address() as { port: number }).port;
}

async function closedPort(host: string): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, host, () => r()));
  const port = (s.address() as { port: number }).port;
  await new Promise((r) => s.close(r));
  return port;
}

afterAll(async () => {
  for (const s of servers) await new Promise<void>((r) => s.close(() => r()));
});

const names = new Map<string, string[]>();
const resolve: Resolver = async (host) => {
  const ips = names.get(host);
  if (!ips) throw new Error(`getaddrinfo ENOTFOUND ${host}`);
  return ips.map((address) => ({ address, family: 4 }));
};

function setup(services: unknown[]) {
  const config = parseMonitorConfig(
    { database: { url: "postgres://unused@127.0.0.1/x" }, defaults: { timeout: 500, forgetAfter: 1000 }, targets: [{ name: "here", local: true, services }] },
    {},
  );
  const monitor = new Monitor({ config, logger, now });
  const events: MonitorEvent[] = [];
  monitor.events.on("event", (e) => events.push(e));
  const probes = config.targets[0]!.services.map((s) => new NetworkServiceProbe("here", s as NetworkService, { sink: monitor, resolve, logger, now }));
  const state = () => Object.fromEntries([...(monitor.serviceStates().get("here") ?? new Map())].map(([k, v]) => [k, v.status]));
  return { monitor, events, probes, state, runAll: () => Promise.all(probes.map((p) => p.run())) };
}

test("without replicas: On when any address of the name answers, Off when none does, with the reason", async () => {
  const port = await listen("127.0.0.2");
  names.set("one.test", ["127.0.0.3", "127.0.0.2"]);
  names.set("none.test", ["127.0.0.3"]);
  const dead = await closedPort("127.0.0.1");
  const { runAll, state, monitor } = setup([
    { name: "any", tcp: `one.test:${port}` },
    { name: "none", tcp: `none.test:${port}` },
    { name: "closed", tcp: `127.0.0.1:${dead}` },
    { name: "unknown", tcp: `nowhere.test:${port}` },
  ]);
  await runAll();
  expect(state()).toEqual({ any: "On", none: "Off", closed: "Off", unknown: "Off" });
  const detail = (n: string) => monitor.serviceStates().get("here")!.get(n)!.detail;
  expect(detail("closed")).toMatch(/ECONNREFUSED/);
  expect(detail("unknown")).toMatch(/cannot resolve nowhere\.test/);
});

test("replicas: one service per address; a forgotten one is gone, its outage closed", async () => {
  const port = await listen("127.0.0.1");
  await listen("127.0.0.2", port);
  names.set("pool.test", ["127.0.0.1", "127.0.0.2", "127.0.0.3"]);
  const { runAll, state, events } = setup([{ name: "pool", tcp: `pool.test:${port}`, replicas: true }]);
  await runAll();
  expect(state()).toEqual({ "pool@127.0.0.1": "On", "pool@127.0.0.2": "On", "pool@127.0.0.3": "Off" });
  expect(events.map((e) => `${e.kind} ${e.component}`)).toEqual(["down service:here/pool@127.0.0.3"]);

  names.set("pool.test", ["127.0.0.1", "127.0.0.2"]);
  clock += 500;
  await runAll();
  expect(state()["pool@127.0.0.3"]).toBe("Off");
  clock += 600;
  await runAll();
  expect(state()).toEqual({ "pool@127.0.0.1": "On", "pool@127.0.0.2": "On" });
  expect(events.at(-1)).toMatchObject({ kind: "up", component: "service:here/pool@127.0.0.3", status: "gone", detail: expect.stringMatching(/no longer resolves/) });
});

test("replicas down before a restart: kept open, checked again though unresolved, then closed as gone", async () => {
  const port = await listen("127.0.0.1");
  names.set("pool2.test", ["127.0.0.1"]);
  const { monitor, probes, runAll, state, events } = setup([{ name: "pool", tcp: `pool2.test:${port}`, replicas: true }]);
  const since = new Date(clock - 60_000);
  monitor.seed([
    { component: "service:here/pool@127.0.0.9", kind: "down", since, detail: "was down", status: "Off" },
    // Something the config no longer names is closed at once.
    { component: "service:here/other@127.0.0.9", kind: "down", since, detail: "was down", status: "Off" },
  ]);
  expect(events.map((e) => `${e.kind} ${e.component} ${e.status}`)).toEqual(["up service:here/other@127.0.0.9 gone"]);
  for (const p of probes) p.seed();
  await runAll();
  expect(state()).toEqual({ "pool@127.0.0.1": "On", "pool@127.0.0.9": "Off" });
  // No second down: the outage restored from the history goes on.
  expect(events.filter((e) => e.kind === "down")).toEqual([]);
  clock += 1000;
  await runAll();
  expect(state()).toEqual({ "pool@127.0.0.1": "On" });
  expect(events.at(-1)).toMatchObject({ kind: "up", component: "service:here/pool@127.0.0.9", status: "gone", since });
});
