/**
 * Where the tests find Postgres and Redis: DATABASE_URL / REDIS_URL when set; otherwise
 * containers via testcontainers when a Docker engine answers and can get the images; otherwise
 * the usual local ports if something answers there; otherwise a clear error saying what to set.
 * (A Docker engine with no registry in reach, as on this project's machines once dockerd runs
 * for the Compose tests, fails the image pull: the local services are used then.)
 */
import { createConnection } from "node:net";

export interface ServiceUrls {
  databaseUrl: string;
  redisUrl: string;
  stop?: () => Promise<void>;
}

const LOCAL = { databaseUrl: "postgres://postgres@127.0.0.1:5432/postgres", redisUrl: "redis://127.0.0.1:6379" };

function reachable(host: string, port: number, timeoutMs = 500): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createConnection({ host, port });
    const done = (ok: boolean) => {
      s.destroy();
      resolve(ok);
    };
    s.setTimeout(timeoutMs, () => done(false));
    s.once("connect", () => done(true));
    s.once("error", () => done(false));
  });
}

async function fromContainers(): Promise<ServiceUrls | { error: Error }> {
  try {
    const { GenericContainer, Wait } = await import("testcontainers");
    const pg = await new GenericContainer("postgres:16-alpine")
      .withEnvironment({ POSTGRES_HOST_AUTH_METHOD: "trust" })
      .withExposedPorts(5432)
      .withWaitStrategy(Wait.forLogMessage(/ready to accept connections/, 2))
      .start();
    // Postgres must not outlive a Redis that cannot start.
    const redis = await new GenericContainer("redis:7-alpine")
      .withExposedPorts(6379)
      .start()
      .catch(async (e: unknown) => {
        await pg.stop();
        throw e;
      });
    return {
      databaseUrl: `postgres://postgres@${pg.getHost()}:${pg.getMappedPort(5432)}/postgres`,
      redisUrl: `redis://${redis.getHost()}:${redis.getMappedPort(6379)}`,
      stop: async () => {
        await Promise.all([pg.stop(), redis.stop()]);
      },
    };
  } catch (e) {
    // No container runtime, or no registry to pull from: fails fast; the caller falls through.
    return { error: e as Error };
  }
}

export async function resolveServiceUrls(env = process.env): Promise<ServiceUrls> {
  if (env.DATABASE_URL && env.REDIS_URL) return { databaseUrl: env.DATABASE_URL, redisUrl: env.REDIS_URL };
  const containers = await fromContainers();
  if (!("error" in containers)) return containers;
  if ((await reachable("127.0.0.1", 5432)) && (await reachable("127.0.0.1", 6379))) {
    if (!/container runtime/i.test(containers.error.message)) process.stderr.write(`testcontainers unavailable (${containers.error.message.split("\n")[0]}); using Postgres and Redis on 127.0.0.1\n`);
    return LOCAL;
  }
  throw new Error(
    "The integration tests need Postgres and Redis: set DATABASE_URL (postgres://user@host:port/db, a role that may CREATE DATABASE) " +
      `and REDIS_URL (redis://host:port), or make a Docker engine reachable for testcontainers (it said: ${containers.error.message.split("\n")[0]}).`,
  );
}
