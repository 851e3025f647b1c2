/**
 * Configuration from the environment (and optionally a JSON file named by PESAN_CONFIG_FILE,
 * whose keys are the same names; the environment wins). Validated once at start-up: every bad
 * setting is named in one error, so an operator fixes them all in one go.
 */
import { readFileSync } from "node:fs";
import { z } from "zod";
import { ConfigError } from "../errors.ts";
import { HOST_PORT_RE, trailingPort } from "../names.ts";
import { parsePgTarget, PgUrlError } from "../db/hosts.ts";
import { parseRedisUrl, RedisUrlError } from "./redis-url.ts";

export type Env = Record<string, string | undefined>;

export function loadConfig<S extends z.ZodObject>(schema: S, env: Env = process.env): z.infer<S> {
  const merged: Env = { ...readConfigFile(env), ...definedOnly(env) };
  const result = schema.safeParse(merged);
  if (result.success) return result.data;
  const issues = result.error.issues.map((i) => {
    const key = i.path.join(".");
    const got = merged[key];
    return `${key}: ${i.message}${got === undefined ? "" : ` (got ${JSON.stringify(got)})`}`;
  });
  throw new ConfigError(issues);
}

function definedOnly(env: Env): Env {
  const out: Env = {};
  for (const [k, v] of Object.entries(env)) if (v !== undefined && v !== "") out[k] = v;
  return out;
}

function readConfigFile(env: Env): Env {
  const file = env.PESAN_CONFIG_FILE;
  if (!file) return {};
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(file, "utf8"));
  } catch (e) {
    throw new ConfigError([`PESAN_CONFIG_FILE: cannot read ${file}: ${(e as Error).message}`]);
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) {
    throw new ConfigError([`PESAN_CONFIG_FILE: ${file} must hold a JSON object of setting names to values`]);
  }
  const out: Env = {};
  for (const [k, v] of Object.entries(parsed)) {
    // null and "" mean "not set", as an empty environment variable does (z.coerce.number("") is 0).
    if (v === null || v === "") continue;
    out[k] = typeof v === "string" ? v : JSON.stringify(v);
  }
  return out;
}

// Field builders: environment values are strings, these coerce and bound them.
export const int = (min: number, max: number) => z.coerce.number().int().min(min).max(max);
export const port = () => int(0, 65535);
export const bool = () =>
  z.enum(["true", "false", "1", "0", "yes", "no"]).transform((v) => v === "true" || v === "1" || v === "yes");
export const logLevel = () => z.enum(["fatal", "error", "warn", "info", "debug", "trace", "silent"]).default("info");
export const id = () => z.string().regex(/^[A-Za-z0-9_.-]{1,64}$/, "must be 1-64 of A-Z a-z 0-9 _ . -");
/**
 * A postgres:// URL, one host or libpq's several (`h1:5432,h2:5432/db?target_session_attrs=read-write`,
 * for a primary with replicas: docs/ha.md); checked by the parser PgDb connects with.
 */
export const pgUrl = () =>
  z.string().superRefine((s, ctx) => {
    try {
      parsePgTarget(s);
    } catch (e) {
      if (!(e instanceof PgUrlError)) throw e;
      ctx.addIssue({ code: "custom", message: e.message });
    }
  });
/** REDIS_URL: one server (redis://, rediss://), Redis Sentinel (redis+sentinel://) or Redis Cluster (redis+cluster://); see redis-url.ts. */
export const redisUrl = () =>
  z.string().superRefine((s, ctx) => {
    try {
      parseRedisUrl(s);
    } catch (e) {
      if (!(e instanceof RedisUrlError)) throw e;
      ctx.addIssue({ code: "custom", message: e.message });
    }
  });
/**
 * BUS_SHARDS: how many streams the gateways' `in` stream is split into (see inStreams in
 * @pesan/shared/bus). Every gateway and router of a cluster must have the same value.
 */
export const busShards = () => int(1, 1024).default(1);
/** A `host:port` address; IPv6 hosts in brackets. */
export const hostPort = () =>
  z
    .string()
    .regex(HOST_PORT_RE, "must be host:port")
    .refine((s) => (trailingPort(s) ?? 0) <= 65535, "port must be 0-65535");

/** Settings every service shares: logging, the health/metrics HTTP server, the bus namespace. */
export const commonSettings = {
  LOG_LEVEL: logLevel(),
  HTTP_HOST: z.string().default("127.0.0.1"),
  BUS_PREFIX: z.string().regex(/^[A-Za-z0-9_.:-]{1,64}$/, "must be 1-64 of A-Z a-z 0-9 _ . : -").default("pesan:"),
  SHUTDOWN_TIMEOUT_MS: int(100, 600_000).default(10_000),
};
