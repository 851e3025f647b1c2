import { z } from "zod";
import { ConfigError } from "../errors.ts";
import { loadConfig, redisUrl } from "./config.ts";
import { parseRedisUrl, RedisUrlError } from "./redis-url.ts";

describe("parseRedisUrl", () => {
  test.each(["redis://127.0.0.1:6379", "rediss://h:6380", "redis://:pw@h/2", "REDIS://h"])("one server %s is passed through as is", (url) => {
    expect(parseRedisUrl(url)).toEqual({ kind: "single", url });
  });

  test("a sentinel list, the master name, default port and db", () => {
    expect(parseRedisUrl("redis+sentinel://10.0.0.1:26380,sentinel-b,[::1]:5000/mymaster")).toEqual({
      kind: "sentinel",
      sentinels: [
        { host: "10.0.0.1", port: 26380 },
        { host: "sentinel-b", port: 26379 },
        { host: "::1", port: 5000 },
      ],
      name: "mymaster",
      db: 0,
    });
    expect(parseRedisUrl("redis+sentinel://h1:1,h2:2/m.x-1/3")).toMatchObject({ name: "m.x-1", db: 3 });
  });

  test("the user and password (percent-decoded) are the Redis servers'", () => {
    expect(parseRedisUrl("redis+sentinel://app:p%40ss:w@h1:26379/m")).toMatchObject({ username: "app", password: "p@ss:w", sentinels: [{ host: "h1", port: 26379 }] });
    const onlyPassword = parseRedisUrl("redis+sentinel://:secret@h1/m");
    expect(onlyPassword).toMatchObject({ password: "secret" });
    expect(onlyPassword).not.toHaveProperty("username");
  });

  test.each([
    ["http://h", /must be redis:\/\/host:port/],
    ["redis://", /not a valid URL|no host/],
    ["redis+sentinel://h1:26379", /names no master/],
    ["redis+sentinel://h1:26379/", /names no master/],
    ["redis+sentinel://h1:26379,,h2/m", /empty sentinel address/],
    ["redis+sentinel:///m", /empty sentinel address/],
    ["redis+sentinel://h1:notaport/m", /bad sentinel address "h1:notaport"/],
    ["redis+sentinel://h1:0/m", /port must be 1-65535/],
    ["redis+sentinel://h1:70000/m", /port must be 1-65535/],
    ["redis+sentinel://::1/m", /bad sentinel address/],
    ["redis+sentinel://h1/bad name/0", /master name "bad name"/],
    ["redis+sentinel://h1/m/x", /path must be/],
    ["redis+sentinel://h1/m/1/2", /path must be/],
    ["redis+sentinel://h1/m?sentinelPassword=x", /no query string/],
    ["redis+sentinel://:%E0%A4%A@h1/m", /percent-encoded/],
  ])("%s is refused", (url, why) => {
    expect(() => parseRedisUrl(url)).toThrow(RedisUrlError);
    expect(() => parseRedisUrl(url)).toThrow(why);
  });

  test("a cluster's seed nodes, default port 6379, and its password", () => {
    expect(parseRedisUrl("redis+cluster://:pw@10.0.0.1:7000,node-b,[::1]:7002")).toEqual({
      kind: "cluster",
      nodes: [
        { host: "10.0.0.1", port: 7000 },
        { host: "node-b", port: 6379 },
        { host: "::1", port: 7002 },
      ],
      password: "pw",
    });
    expect(parseRedisUrl("redis+cluster://h1:7000/")).toEqual({ kind: "cluster", nodes: [{ host: "h1", port: 7000 }] });
  });

  test.each([
    ["redis+cluster://h1:7000/0", /takes no path/],
    ["redis+cluster://h1:7000,,h2/", /empty node address/],
    ["redis+cluster://h1:x", /bad node address "h1:x"/],
    ["redis+cluster://h1:7000?x=1", /no query string/],
  ])("%s is refused", (url, why) => {
    expect(() => parseRedisUrl(url)).toThrow(why);
  });

  test("the config field fails fast naming REDIS_URL and what is wrong", () => {
    const schema = z.object({ REDIS_URL: redisUrl() });
    expect(loadConfig(schema, { REDIS_URL: "redis+sentinel://h1,h2:26380/mymaster" }).REDIS_URL).toBe("redis+sentinel://h1,h2:26380/mymaster");
    let err: unknown;
    try {
      loadConfig(schema, { REDIS_URL: "redis+sentinel://h1,h2" });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as ConfigError).issues).toEqual([expect.stringMatching(/^REDIS_URL: names no master.*\(got "redis\+sentinel:\/\/h1,h2"\)$/)]);
  });
});
