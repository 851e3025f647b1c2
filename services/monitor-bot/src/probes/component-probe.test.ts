/**
 * Component probes against real local servers (HTTP, UDP, the test Postgres and Redis), with
 * the resolver injected so one name can stand for several addresses (127.0.0.1 and ::1).
 */
import { createSocket, type Socket } from "node:dgram";
import { createServer, type Server } from "node:http";
import { createLogger } from "@pesan/shared/observability";
import { ComponentProbe, endpointOf, systemResolver, type Resolver } from "./component-probe.ts";
import { parseMonitorConfig, type ComponentConfig } from "../config/config.ts";
import type { MonitorEvent } from "../alerting/events.ts";
import { Monitor } from "../monitor.ts";

const logger = createLogger("component-probe-test", "silent");
let clock = Date.parse("2026-11-23T10:00:00.000Z");
const now = () => new Date(clock);

const servers: Array<Server | Socket> = [];

async function http(status: number, host = "127.0.0.1"): Promise<number> {
  const s = createServer((req, res) => {
    res.statusCode = req.url === "/healthz" ? status : 404;
    res.end(status === 200 ? "ok" : "database down");
  });
  await new Promise<void>((r) => s.listen(0, host, () => r()));
  servers.push(s);
  return (s.address() as { port: number }).port;
}

async function udp(answer: string | undefined): Promise<number> {
  const s = createSocket("udp4");
  s.on("message", (msg, rinfo) => {
    if (answer !== undefined && msg.toString() === "/@live?") s.send(answer, rinfo.port, rinfo.address);
  });
  await new Promise<void>((r) => s.bind(0, "127.0.0.1", () => r()));
  servers.push(s);
  return s.address().port;
}

async function closedTcpPort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, "127.0.0.1", () => r()));
  const port = (s.address() as { port: number }).port;
  await new Promise((r) => s.close(r));
  return port;
}

afterAll(async () => {
  for (const s of servers) await new Promise<void>((r) => ("listening" in s ? s.close(() => r()) : s.close(() => r())));
});

function setup(components: unknown[], resolve: Resolver) {
  const config = parseMonitorConfig({ database: { url: "postgres://unused@127.0.0.1/x" }, defaults: { timeout: 500, forgetAfter: 1000 }, components }, {});
  const monitor = new Monitor({ config, logger, now });
  const events: MonitorEvent[] = [];
  monitor.events.on("event", (e) => events.push(e));
  const probes = config.components.map((c: ComponentConfig) => new ComponentProbe(c, { sink: monitor, resolve, logger, now }));
  const state = () => Object.fromEntries(monitor.componentStates().map((c) => [`${c.type}:${c.name}@${c.address ?? "-"}`, c.ok]));
  return { monitor, events, probes, state, runAll: () => Promise.all(probes.map((p) => p.run())) };
}

const localhostBoth: Resolver = async (host) => {
  if (host !== "svc.test") throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${host}`), { code: "ENOTFOUND" });
  return [
    { address: "127.0.0.1", family: 4 },
    { address: "::1", family: 6 },
  ];
};

test("HTTP health: 2xx is up; 503 and a closed port are down, with the reason", async () => {
  const up = await http(200);
  const sick = await http(503);
  const closed = await closedTcpPort();
  const { runAll, state, monitor } = setup(
    [
      { type: "http", name: "up", url: `http://127.0.0.1:${up}/healthz` },
      { type: "http", name: "sick", url: `http://127.0.0.1:${sick}/healthz` },
      { type: "http", name: "closed", url: `http://127.0.0.1:${closed}/healthz` },
    ],
    localhostBoth,
  );
  await runAll();
  expect(state()).toEqual({ [`http:up@127.0.0.1:${up}`]: true, [`http:sick@127.0.0.1:${sick}`]: false, [`http:closed@127.0.0.1:${closed}`]: false });
  const detail = (name: string) => monitor.componentStates().find((c) => c.name === name)!.detail;
  expect(detail("up")).toBe("HTTP 200");
  expect(detail("sick")).toBe("HTTP 503: database down");
  expect(detail("closed")).toMatch(/ECONNREFUSED/);
});

test("a name resolving to two addresses: each is probed and reported on its own", async () => {
  const port = await http(200, "127.0.0.1"); // nothing listens on [::1]:port
  const { runAll, state, events } = setup([{ type: "http", name: "router", url: `http://svc.test:${port}/healthz` }], localhostBoth);
  await runAll();
  expect(state()).toEqual({ [`http:router@127.0.0.1:${port}`]: true, [`http:router@[::1]:${port}`]: false });
  expect(events.map((e) => `${e.kind} ${e.component}`)).toEqual([`down http:router@[::1]:${port}`]);
});

test("UDP gateway: yes is up; silence or another answer is down", async () => {
  const live = await udp("yes\n");
  const unavailable = await udp("ERR UNAVAILABLE service unavailable");
  const silent = await udp(undefined);
  const { runAll, monitor } = setup(
    [
      { type: "udp", name: "live", address: `127.0.0.1:${live}` },
      { type: "udp", name: "unavailable", address: `127.0.0.1:${unavailable}` },
      { type: "udp", name: "dead", address: `127.0.0.1:${silent}` },
    ],
    localhostBoth,
  );
  await runAll();
  const by = (name: string) => monitor.componentStates().find((c) => c.name === name)!;
  expect(by("live")).toMatchObject({ ok: true, detail: "yes", address: `127.0.0.1:${live}` });
  expect(by("unavailable")).toMatchObject({ ok: false, detail: 'answered "ERR UNAVAILABLE service unavailable" instead of yes' });
  expect(by("dead")).toMatchObject({ ok: false, detail: "no reply to /@live? within 500 ms" });
});

test("Postgres and Redis: the real ones are up, a closed port is down", async () => {
  const closed = await closedTcpPort();
  const { runAll, state } = setup(
    [
      { type: "postgres", name: "pg", url: process.env.DATABASE_URL },
      { type: "redis", name: "redis", url: process.env.REDIS_URL },
      { type: "postgres", name: "pg-dead", url: `postgres://postgres@127.0.0.1:${closed}/postgres` },
      { type: "redis", name: "redis-dead", url: `redis://127.0.0.1:${closed}` },
    ],
    localhostBoth,
  );
  await runAll();
  const s = state();
  expect(Object.entries(s).map(([k, ok]) => `${k.split("@")[0]} ${ok}`).sort()).toEqual([
    "postgres:pg true",
    "postgres:pg-dead false",
    "redis:redis true",
    "redis:redis-dead false",
  ]);
});

test("an unresolvable name is down as a whole; once it resolves, that outage closes", async () => {
  const port = await http(200);
  let resolvable = false;
  const resolver: Resolver = async (host) => (resolvable ? [{ address: "127.0.0.1", family: 4 }] : localhostBoth(host));
  const { runAll, state, events } = setup([{ type: "http", name: "api", url: `http://api.invalid:${port}/healthz` }], resolver);
  await runAll();
  expect(state()).toEqual({ "http:api@-": false });
  expect(events[0]).toMatchObject({ kind: "down", component: "http:api", detail: expect.stringContaining("cannot resolve api.invalid: getaddrinfo ENOTFOUND") });
  resolvable = true;
  await runAll();
  expect(state()).toEqual({ [`http:api@127.0.0.1:${port}`]: true });
  expect(events[1]).toMatchObject({ kind: "up", component: "http:api", status: "up" });
});

test("an address that stops resolving is still probed until forgetAfter, then closed as gone", async () => {
  const port = await http(200);
  let both = true;
  const resolver: Resolver = async () => (both ? [{ address: "127.0.0.1", family: 4 }, { address: "::1", family: 6 }] : [{ address: "127.0.0.1", family: 4 }]);
  const { runAll, state, events } = setup([{ type: "http", name: "web", url: `http://svc.test:${port}/healthz` }], resolver);
  await runAll();
  expect(Object.keys(state())).toHaveLength(2);
  both = false;
  clock += 500; // < forgetAfter (1 s): still probed, still down
  await runAll();
  expect(Object.keys(state())).toHaveLength(2);
  clock += 1000;
  await runAll();
  expect(state()).toEqual({ [`http:web@127.0.0.1:${port}`]: true });
  expect(events.map((e) => `${e.kind} ${e.status} ${e.component}`)).toEqual([`down down http:web@[::1]:${port}`, `up gone http:web@[::1]:${port}`]);
});

test("endpoints: default ports per scheme, IPv6 literals", () => {
  const c = (over: Record<string, unknown>) => ({ name: "x", intervalMs: 1, timeoutMs: 1, forgetAfterMs: 1, ...over }) as ComponentConfig;
  expect(endpointOf(c({ type: "http", url: "https://example.org/healthz" }))).toEqual({ host: "example.org", port: 443 });
  expect(endpointOf(c({ type: "redis", url: "redis://[::1]/0" }))).toEqual({ host: "::1", port: 6379 });
  expect(endpointOf(c({ type: "udp", address: "[::1]:4999" }))).toEqual({ host: "::1", port: 4999 });
  expect(endpointOf(c({ type: "postgres", url: "postgres://u@db/pesan" }))).toEqual({ host: "db", port: 5432 });
});

test("the system resolver returns every address of a name", async () => {
  expect((await systemResolver("localhost")).map((a) => a.address)).toContain("127.0.0.1");
});
