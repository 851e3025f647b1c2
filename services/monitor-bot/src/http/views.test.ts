import { generateKeyPairSync } from "node:crypto";
import { createLogger } from "@pesan/shared/observability";
import { parseMonitorConfig } from "../config/config.ts";
import { Monitor } from "../monitor.ts";
import { hostViews, statusRows } from "./views.ts";

const key = generateKeyPairSync("rsa", { modulusLength: 1024 }).privateKey.export({ type: "pkcs1", format: "pem" }).toString();
let t = Date.parse("2026-11-25T12:00:00.000Z");
const now = () => new Date(t);

function monitor() {
  const target = (name: string, services: string[] = []) => ({ name, host: "127.0.0.1", username: "u", privateKey: key, hostKey: "SHA256:0mE4wOz/P//s0y1zv8svt4o9RjTmLlj6et85vKUAFkk", services });
  const config = parseMonitorConfig({ database: { url: "postgres://u@h/db" }, targets: [target("web1", ["nginx"]), target("db1"), target("new")] }, {});
  return new Monitor({ config, logger: createLogger("views-test", "silent"), now });
}

test("hostViews: readings while reachable; none (not stale ones) while unreachable", () => {
  const m = monitor();
  m.hostReachable("web1", true);
  m.hostMetric("web1", "cpu", 37, 5);
  m.hostMetric("web1", "mem", null, 5, "exit code 1");
  m.service("web1", "nginx", true, 3);
  m.hostReachable("db1", true);
  m.hostMetric("db1", "cpu", 80, 5);
  t += 1000;
  m.hostReachable("db1", false, "cannot connect: refused");
  const [web1, db1, fresh] = hostViews(m, ["web1", "db1", "new"]);
  expect(web1).toMatchObject({ reachable: true, cpu: { value: 37, error: undefined }, mem: { value: null, error: "exit code 1" }, hdd: { value: null, at: undefined } });
  expect(web1!.services).toEqual([{ name: "nginx", status: "On", at: expect.any(Date) }]);
  expect(db1).toMatchObject({ reachable: false, since: new Date(t), cpu: { value: null, error: "unreachable" } });
  expect(fresh).toMatchObject({ reachable: undefined, cpu: { value: null } });
});

test("statusRows: down first (oldest first), then unknown, then up with since from the history", () => {
  const m = monitor();
  m.hostReachable("web1", true);
  m.service("web1", "nginx", false, 2, "exit code 3");
  t += 1000;
  m.hostReachable("db1", false, "refused");
  m.messaging("msg1", "OK", 12, 30_000, 14);
  const upAt = new Date("2026-11-24T09:00:00Z");
  const rows = statusRows(m, ["web1", "db1", "new"], new Map([["host:web1", upAt]]));
  expect(rows.map((r) => [r.component, r.state])).toEqual([
    ["service:web1/nginx", "down"],
    ["host:db1", "down"],
    ["host:new", "unknown"],
    ["host:web1", "up"],
    ["messaging:msg1", "up"],
  ]);
  expect(rows[0]!.since!.getTime()).toBeLessThan(rows[1]!.since!.getTime());
  expect(rows.find((r) => r.component === "host:web1")!.since).toEqual(upAt);
});
