import { loadRouterConfig } from "./config.ts";
import { routerOptionsFrom } from "./options.ts";

const DB = { DATABASE_URL: "postgres://x", REDIS_URL: "redis://x" };

describe("the router's server list (SERVERS, formerly PEERS)", () => {
  test("SERVERS is read, nearest first, with no warning", () => {
    const o = routerOptionsFrom(loadRouterConfig({ ...DB, SERVERS: "b=h:1,c=[::1]:2" }));
    expect(o.peers).toEqual([
      { name: "b", address: "h:1", proximity: 10 },
      { name: "c", address: "[::1]:2", proximity: 20 },
    ]);
    expect(o.configWarnings).toEqual([]);
  });

  test("the old name PEERS still works, with a warning naming SERVERS", () => {
    const o = routerOptionsFrom(loadRouterConfig({ ...DB, PEERS: "b=h:1" }));
    expect(o.peers).toEqual([{ name: "b", address: "h:1", proximity: 10 }]);
    expect(o.configWarnings).toHaveLength(1);
    expect(o.configWarnings![0]).toMatch(/PEERS is deprecated.*rename it to SERVERS/);
  });

  test("with both set, SERVERS wins and the warning says PEERS is ignored", () => {
    const o = routerOptionsFrom(loadRouterConfig({ ...DB, SERVERS: "b=h:1", PEERS: "c=h:2" }));
    expect(o.peers.map((p) => p.name)).toEqual(["b"]);
    expect(o.configWarnings![0]).toMatch(/PEERS is ignored because SERVERS is set/);
  });

  test("neither: an empty list, no warning", () => {
    const o = routerOptionsFrom(loadRouterConfig(DB));
    expect(o.peers).toEqual([]);
    expect(o.configWarnings).toEqual([]);
  });

  test("a bad entry is named under its setting", () => {
    expect(() => loadRouterConfig({ ...DB, SERVERS: "b.c=h:1" })).toThrow(/SERVERS/);
  });
});
