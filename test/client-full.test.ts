/**
 * `ERR FULL` followed: two linked clusters, the first with QUOTA=1. Once its one place is
 * taken, a user who logs in there with the client library, or with the chat CLI, ends up
 * logged in on the second cluster, which the first one's ERR FULL listed.
 */
import { spawn } from "node:child_process";
import { join } from "node:path";
import { PesanClient } from "@pesan/client";
import { REPO_ROOT } from "@pesan/cluster";
import { eventually, useLinkedClusters } from "./support/clusters.ts";
import { RawClient } from "./support/udp.ts";

const fx = useLinkedClusters({ names: ["a", "b"], intervalMs: 200, env: { OUTBOX_POLL_MS: "50" }, routerEnv: (name): Record<string, string> => (name === "a" ? { QUOTA: "1" } : {}) });
const clients: PesanClient[] = [];
afterAll(async () => {
  await Promise.all(clients.map((c) => c.close()));
});

beforeAll(async () => {
  const reg = fx.track(await RawClient.open(fx.addr("a")));
  for (const u of ["first", "second", "third"]) expect(await reg.request(`REGISTER ${u} secret1`)).toBe(`OK REGISTERED ${u}`);
  // The one place on a is taken...
  const first = fx.track(await RawClient.open(fx.addr("a")));
  expect(await first.request("LOGIN first secret1")).toMatch(/^OK LOGIN first /);
  // ...and a knows b is up (peer-sync), and b knows the accounts.
  const probe = fx.track(await RawClient.open(fx.addr("a")));
  await eventually(async () => expect(await probe.request("LOGIN second secret1")).toBe(`ERR FULL ${fx.addr("b")}`), 20_000, 200);
}, 120_000);

test("the library: LOGIN on the full cluster ends on the one its ERR FULL lists", async () => {
  const c = new PesanClient({ servers: [fx.addr("a")], capAck: true, heartbeatMs: 1000 });
  clients.push(c);
  await c.start();
  const full: unknown[] = [];
  c.on("full", (e) => full.push(e));
  // Retried until b knows the account (replication); only the attempt that got in is checked,
  // so each attempt starts with no full events (a fresh clone's run saw an earlier one fail).
  await eventually(
    async () => {
      full.length = 0;
      expect(await c.login("second", "secret1")).toMatchObject({ user: "second" });
    },
    10_000,
    200,
  );
  expect(c.currentServer).toBe(fx.addr("b"));
  expect(full).toEqual([{ server: fx.addr("a"), trying: [{ address: fx.addr("b"), rttMs: expect.any(Number) }], unreachable: [] }]);
  // The session works there: b answers SERVERS with itself first, counting this session.
  const servers = await c.request("SERVERS");
  expect(servers[0]!.raw).toMatch(new RegExp(`^@\\S+ SERVER b ${fx.addr("b").replace(/\./g, "\\.")} UP [1-9]\\d*/`));
  expect(await c.who()).toEqual(expect.arrayContaining(["first", "second"]));
  await c.logout();
});

test("the chat CLI says the server is full, and where it ended", async () => {
  const child = spawn(process.execPath, [join(REPO_ROOT, "packages/client/src/chat.ts"), "--server", fx.addr("a"), "--user", "third", "--no-history"], {
    env: { ...process.env, PESAN_PASSWORD: "secret1", NO_COLOR: "1" },
    stdio: ["pipe", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  child.stdout.setEncoding("utf8").on("data", (d: string) => (stdout += d));
  child.stderr.setEncoding("utf8").on("data", (d: string) => (stderr += d));
  const closed = new Promise<number | null>((resolve) => child.on("close", resolve));
  try {
    await eventually(async () => expect(stderr).toMatch(/logged in as third on /), 15_000, 100);
    child.stdin.end("/who\n");
    expect(await closed).toBe(0);
  } finally {
    child.kill("SIGKILL");
  }
  expect(stderr).toContain(`* ${fx.addr("a")} is full; trying nearest first: ${fx.addr("b")} (`);
  expect(stderr).toContain(`* logged in as third on ${fx.addr("b")}`);
  expect(stdout).toContain(`ERR FULL ${fx.addr("b")}`);
  expect(stdout).toMatch(/^OK LOGIN third \S+ \S+$/m);
  expect(stdout).toMatch(/^OK WHO \d+$/m);
});
