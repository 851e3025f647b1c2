import { mkdtempSync, readFileSync, rmSync, existsSync } from "node:fs";
import { createServer, type Server } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createLogger, Registry } from "@pesan/shared/observability";
import { ActionRunner } from "./actions.ts";
import type { ActionConfig } from "../config/config.ts";
import { eventFrom, type MonitorEvent } from "./events.ts";
import { createMonitorMetrics } from "../metrics.ts";

const logger = createLogger("actions-test", "silent");
const dir = mkdtempSync(join(tmpdir(), "pesan-actions-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const down: MonitorEvent = eventFrom(
  { component: "host:web1", kind: "down", at: new Date("2026-11-23T10:00:02.000Z"), since: new Date("2026-11-23T10:00:01.000Z"), detail: "cannot connect: ECONNREFUSED" },
  "unreachable",
  null,
);

function action(over: Partial<ActionConfig>): ActionConfig {
  return { name: "a", on: ["down", "up", "threshold", "clear"], components: ["*"], timeout: 5000, timeoutMs: 5000, ...over } as ActionConfig;
}

function runner(actions: ActionConfig[], maxConcurrent = 8) {
  const metrics = createMonitorMetrics(new Registry());
  const r = new ActionRunner({ actions, logger, metrics, maxConcurrent });
  const outcomes = async () => Object.fromEntries((await metrics.actions.get()).values.map((v) => [`${v.labels.action} ${v.labels.outcome}`, v.value]));
  return { r, outcomes };
}

test("a command gets the event in PESAN_* variables", async () => {
  const out = join(dir, "env.txt");
  const { r, outcomes } = runner([action({ name: "env", command: `env | grep '^PESAN_' | sort > ${out}` })]);
  expect(r.dispatch(down)).toBe(1);
  await r.idle();
  const env = readFileSync(out, "utf8");
  expect(env).toContain("PESAN_EVENT=down\n");
  expect(env).toContain("PESAN_COMPONENT=host:web1\n");
  expect(env).toContain("PESAN_STATUS=unreachable\n");
  expect(env).toContain("PESAN_VALUE=\n");
  expect(env).toContain("PESAN_SINCE=2026-11-23T10:00:01.000Z\n");
  expect(env).toContain("PESAN_AT=2026-11-23T10:00:02.000Z\n");
  expect(env).toContain("PESAN_DETAIL=cannot connect: ECONNREFUSED\n");
  expect(env).toContain("PESAN_ACTION=env\n");
  expect(env).toMatch(/PESAN_MESSAGE=DOWN host:web1 is unreachable since 2026-11-23T10:00:01.000Z/);
  expect(await outcomes()).toEqual({ "env ok": 1 });
  await r.close();
});

test("only matching actions run (event kinds and component patterns)", async () => {
  const out = join(dir, "match.txt");
  const { r } = runner([
    action({ name: "ups", on: ["up"], command: `echo ups >> ${out}` }),
    action({ name: "services", components: ["service:*"], command: `echo services >> ${out}` }),
    action({ name: "hosts", on: ["down"], components: ["host:*"], command: `echo hosts >> ${out}` }),
  ]);
  expect(r.dispatch(down)).toBe(1);
  await r.idle();
  expect(readFileSync(out, "utf8")).toBe("hosts\n");
  await r.close();
});

test("dispatch never waits; a hanging command is killed with its children at its timeout", async () => {
  const late = join(dir, "late.txt");
  const { r, outcomes } = runner([action({ name: "slow", timeoutMs: 200, command: `(sleep 1; echo late > ${late}) & wait` })]);
  const t0 = performance.now();
  r.dispatch(down);
  expect(performance.now() - t0).toBeLessThan(50);
  await r.idle();
  expect(performance.now() - t0).toBeLessThan(900);
  expect(await outcomes()).toEqual({ "slow timeout": 1 });
  await new Promise((res) => setTimeout(res, 1200));
  expect(existsSync(late)).toBe(false);
  await r.close();
});

test("a failing command is counted and logged, and the next still runs", async () => {
  const out = join(dir, "after-fail.txt");
  const { r, outcomes } = runner([action({ name: "fails", command: "echo oops >&2; exit 3" }), action({ name: "works", command: `echo ok > ${out}` })]);
  r.dispatch(down);
  await r.idle();
  expect(await outcomes()).toEqual({ "fails failed": 1, "works ok": 1 });
  expect(readFileSync(out, "utf8")).toBe("ok\n");
  await r.close();
});

describe("HTTP actions", () => {
  let server: Server;
  let port: number;
  const seen: Array<{ method: string; url: string; body: string; auth: string | undefined }> = [];
  let inFlight = 0;
  let maxInFlight = 0;

  beforeAll(async () => {
    server = createServer((req, res) => {
      let body = "";
      inFlight++;
      maxInFlight = Math.max(maxInFlight, inFlight);
      req.on("data", (d: Buffer) => (body += d));
      req.on("end", () => {
        seen.push({ method: req.method!, url: req.url!, body, auth: req.headers.authorization });
        setTimeout(() => {
          inFlight--;
          res.statusCode = req.url!.startsWith("/fail") ? 500 : 200;
          res.end("done");
        }, req.url!.startsWith("/slow") ? 100 : 0);
      });
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
    port = (server.address() as { port: number }).port;
  });
  afterAll(async () => {
    await new Promise((r) => server.close(r));
  });

  test("GET with URL placeholders (an SMS gateway), POST with the event as JSON", async () => {
    const { r, outcomes } = runner([
      action({ name: "sms", http: { url: `http://127.0.0.1:${port}/send?to=62811&text={message}&c={component}`, method: "GET", headers: {} } }),
      action({ name: "hook", http: { url: `http://127.0.0.1:${port}/hook`, method: "POST", headers: { authorization: "Bearer t0k" } } }),
      action({ name: "broken", http: { url: `http://127.0.0.1:${port}/fail`, method: "POST", headers: {} } }),
    ]);
    r.dispatch(down);
    await r.idle();
    const sms = seen.find((s) => s.url.startsWith("/send"))!;
    expect(sms.method).toBe("GET");
    expect(new URL(`http://x${sms.url}`).searchParams.get("text")).toBe(down.message);
    expect(new URL(`http://x${sms.url}`).searchParams.get("c")).toBe("host:web1");
    const hook = seen.find((s) => s.url === "/hook")!;
    expect(hook.auth).toBe("Bearer t0k");
    expect(JSON.parse(hook.body)).toMatchObject({ component: "host:web1", kind: "down", status: "unreachable", since: "2026-11-23T10:00:01.000Z" });
    expect(await outcomes()).toEqual({ "sms ok": 1, "hook ok": 1, "broken failed": 1 });
    await r.close();
  });

  test("at most maxConcurrent actions run at once; the rest queue", async () => {
    maxInFlight = 0;
    const slow = Array.from({ length: 5 }, (_, i) => action({ name: `slow${i}`, http: { url: `http://127.0.0.1:${port}/slow`, method: "GET", headers: {} } }));
    const { r, outcomes } = runner(slow, 2);
    r.dispatch(down);
    await r.idle();
    expect(maxInFlight).toBe(2);
    expect(Object.values(await outcomes())).toEqual([1, 1, 1, 1, 1]);
    await r.close();
  });

  test("an unreachable URL times out or fails without throwing", async () => {
    const { r, outcomes } = runner([action({ name: "nowhere", timeoutMs: 300, http: { url: "http://127.0.0.1:1/x", method: "POST", headers: {} } })]);
    r.dispatch(down);
    await r.idle();
    expect(await outcomes()).toEqual({ "nowhere failed": 1 });
    await r.close();
    // closed: later events are ignored
    expect(r.dispatch(down)).toBe(0);
  });
});
