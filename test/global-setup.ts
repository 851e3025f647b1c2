import { resolveServiceUrls } from "./support/services.ts";

/** Runs once before all test files; the workers inherit the URLs through the environment. */
export default async function globalSetup(): Promise<void> {
  const urls = await resolveServiceUrls();
  process.env.DATABASE_URL = urls.databaseUrl;
  process.env.REDIS_URL = urls.redisUrl;
  (globalThis as { __pesanStop?: () => Promise<void> }).__pesanStop = urls.stop;
}
