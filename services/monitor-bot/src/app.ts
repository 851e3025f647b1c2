/**
 * Builds the whole monitor from a validated config: the one place that knows every part. The
 * process (main.ts) and the tests both use it; the tests inject a clock, a resolver, an SSH
 * connector or a client factory through the options.
 */
import { join } from "node:path";
import { Redis } from "ioredis";
import { PgDb, type Db } from "@pesan/shared/db";
import { redisRetryDelay } from "@pesan/shared/bus";
import { createLogger, createRegistry, type Logger, type Registry } from "@pesan/shared/observability";
import type { Lifecycle } from "@pesan/shared/runtime";
import { ActionRunner } from "./alerting/actions.ts";
import { Alerter } from "./alerting/alerter.ts";
import { ApiServer } from "./http/api.ts";
import { ComponentProbe, systemResolver, type Resolver } from "./probes/component-probe.ts";
import type { MonitorConfig } from "./config/config.ts";
import { HistoryWriter } from "./history/history.ts";
import { HostProbe } from "./probes/host-probe.ts";
import { registerDashboard } from "./http/dashboard.ts";
import { LocalLease, RedisLease, type Lease } from "./alerting/lease.ts";
import { MemberStore } from "./telegram/member-store.ts";
import { MessagingProbe, type ClientFactory } from "./probes/messaging-probe.ts";
import { createMonitorMetrics, type MonitorMetrics } from "./metrics.ts";
import { Monitor } from "./monitor.ts";
import { Every } from "./probes/schedule.ts";
import { connectSsh, type SshConnector } from "./probes/ssh.ts";
import { Outbox } from "./telegram/outbox.ts";
import { MemoryBotState, RedisBotState, type BotState } from "./alerting/shared-state.ts";
import { migrateMonitor, openConditions, upSince } from "./history/store.ts";
import { createBot, registerWebhook, TelegramBot } from "./telegram/telegram-bot.ts";
import { UserStats } from "./history/user-stats.ts";
import { hostViews, statusRows } from "./http/views.ts";
import { SilenceStore, Silences } from "./alerting/silence-store.ts";

export interface MonitorAppOptions {
  /** services/monitor-bot: where migrations/ is. */
  packageDir: string;
  logger?: Logger;
  registry?: Registry;
  now?: () => Date;
  resolve?: Resolver;
  connect?: SshConnector;
  createClient?: ClientFactory;
  /**
   * Databases to use instead of opening database.url / usersUrl (e.g. the embedded mode's
   * PGlite). Their owner closes them; the app does not.
   */
  db?: Db;
  usersDb?: Db;
}

export interface MonitorApp {
  config: MonitorConfig;
  logger: Logger;
  monitor: Monitor;
  actions: ActionRunner;
  history: HistoryWriter;
  api: ApiServer;
  db: Db;
  usersDb: Db;
  registry: Registry;
  metrics: MonitorMetrics;
  userStats: UserStats | undefined;
  /** Present when the config has a telegram section. */
  telegram: { bot: TelegramBot; alerter: Alerter; outbox: Outbox; lease: Lease; members: MemberStore; state: BotState } | undefined;
  /** Mutes and acks (Postgres) with the config's maintenance windows. */
  silences: Silences;
  /** In start order; close them in reverse (runComponents does). */
  components: Lifecycle[];
  /** For tests and embedding: starts every component in order. */
  start(): Promise<void>;
  /** Closes what was started, in reverse order. Idempotent. */
  close(): Promise<void>;
}

export function createMonitorApp(config: MonitorConfig, opts: MonitorAppOptions): MonitorApp {
  const logger = opts.logger ?? createLogger("monitor-bot", config.logLevel, { instance: config.instance });
  const registry = opts.registry ?? createRegistry("monitor-bot");
  const metrics = createMonitorMetrics(registry);
  const now = opts.now ?? (() => new Date());
  const appName = `pesan-monitor-${config.instance}`.slice(0, 63);
  const dbConfig = config.database;
  if (!opts.db && !dbConfig) throw new Error("monitor-bot: no database (set database.url in the config, or pass a Db)");
  const ownDb = opts.db === undefined;
  const db = opts.db ?? new PgDb(dbConfig!.url, { applicationName: appName, max: dbConfig!.poolMax });
  // An injected db also holds the users table (the embedded mode has one database).
  const ownUsersDb = opts.usersDb === undefined && ownDb && dbConfig!.usersUrl !== dbConfig!.url;
  const usersDb: Db = opts.usersDb ?? (ownUsersDb ? new PgDb(dbConfig!.usersUrl, { applicationName: appName, max: 2 }) : db);

  const history = new HistoryWriter(
    { db, logger, metrics, now },
    {
      source: config.instance,
      flushEveryMs: config.history.flushEveryMs,
      pruneEveryMs: config.history.pruneEveryMs,
      retentionMs: config.history.retentionMs,
      eventRetentionMs: config.history.eventRetentionMs,
    },
  );
  const actions = new ActionRunner({ actions: config.actions, logger, metrics, maxConcurrent: config.alerts.maxConcurrentActions });
  const monitor = new Monitor({ config, logger, now, metrics, history, actions });
  const userStats = config.userStats.enabled
    ? new UserStats({
        db: usersDb,
        now,
        logger,
        onCounts: (c) => {
          for (const [period, n] of Object.entries(c)) metrics.newUsers.set({ period }, n);
        },
      })
    : undefined;

  const silences = new Silences(new SilenceStore(db, logger, now), config.maintenance);
  const telegram = config.telegram ? createTelegram(config, { db, logger, metrics, now, monitor, silences }) : undefined;

  const api = new ApiServer(
    {
      monitor,
      userStats,
      registry,
      logger,
      checks: [
        { name: "postgres", check: async () => void (await db.query("SELECT 1")) },
        // The lease and the bot's shared state live there; without it alerts go out degraded.
        ...(telegram?.redis ? [{ name: "redis", check: () => pingRedis(telegram.redis!) }] : []),
      ],
      info: () => ({
        service: "monitor-bot",
        instance: config.instance,
        targets: config.targets.length,
        components: config.components.length,
        messaging: config.messaging.length,
        ...(telegram ? { telegram: { mode: config.telegram!.mode, leader: telegram.parts.lease.isLeader() } } : {}),
      }),
      routes: [
        (app) =>
          registerDashboard(app, {
            monitor,
            config,
            userStats,
            db,
            logger,
            now,
            publicDir: join(opts.packageDir, "public"),
            silences,
            ...(telegram ? { telegram: () => ({ leader: telegram.parts.lease.isLeader(), mode: config.telegram!.mode }) } : {}),
          }),
        ...(config.telegram?.mode === "webhook" && config.telegram.webhook
          ? [(app: Parameters<typeof registerWebhook>[0]) => registerWebhook(app, config.telegram!.webhook!.path, () => telegram?.parts.bot)]
          : []),
      ],
    },
    config.http,
  );

  const probes: Lifecycle[] = [
    ...config.targets.map((t) => new HostProbe(t, { sink: monitor, connect: opts.connect ?? connectSsh, resolve: opts.resolve ?? systemResolver, logger, now })),
    ...config.components.map((c) => new ComponentProbe(c, { sink: monitor, resolve: opts.resolve ?? systemResolver, logger, now })),
    ...config.messaging.map((m) => new MessagingProbe(m, { sink: monitor, logger, ...(opts.createClient ? { createClient: opts.createClient } : {}) })),
  ];
  if (userStats) probes.push(new Every("user-stats", config.userStats.intervalMs, () => userStats.refresh(), logger));
  // Ended mutes hold nothing; dropping them keeps the table to what is in effect.
  probes.push(new Every("silence-prune", config.history.pruneEveryMs, async () => void (await silences.store.pruneExpired()), logger));

  const database: Lifecycle = {
    name: "database",
    start: async () => {
      const applied = await migrateMonitor(db, opts.packageDir);
      if (applied.length > 0) logger.info({ applied }, "monitor migrations applied");
      monitor.seed(await openConditions(db));
    },
    close: async () => {
      if (ownDb) await db.close();
      if (ownUsersDb) await usersDb.close();
    },
  };

  // The bot answers only once the members table exists; alerts need the probes' first results.
  const components: Lifecycle[] = [database, history, actions, ...(telegram?.before ?? []), api, ...probes, ...(telegram?.after ?? [])];
  const started: Lifecycle[] = [];
  let closing: Promise<void> | undefined;
  return {
    config,
    logger,
    monitor,
    actions,
    history,
    api,
    db,
    usersDb,
    registry,
    metrics,
    userStats,
    telegram: telegram?.parts,
    silences,
    components,
    async start() {
      for (const c of components) {
        await c.start();
        started.push(c);
      }
    },
    close() {
      closing ??= (async () => {
        for (const c of [...started].reverse()) {
          try {
            await c.close();
          } catch (e) {
            logger.error({ err: e, component: c.name }, "error while closing");
          }
        }
        // The pools exist from construction on, whether or not start() got that far.
        if (!started.includes(database)) await database.close();
      })();
      return closing;
    },
  };
}

/**
 * The bot's parts. With redis in the config, the replicas share a lease (only its holder polls
 * Telegram and sends alerts), the update log and the alert records; without it this process is
 * the only sender.
 */
function createTelegram(
  config: MonitorConfig,
  deps: { db: Db; logger: Logger; metrics: MonitorMetrics; now: () => Date; monitor: Monitor; silences: Silences },
): { parts: NonNullable<MonitorApp["telegram"]>; before: Lifecycle[]; after: Lifecycle[]; redis: Redis | undefined } {
  const tg = config.telegram!;
  const logger = deps.logger.child({ component: "telegram" });
  const members = new MemberStore(deps.db);
  const bot = createBot(tg);
  const outbox = new Outbox({ send: async (chatId, text, signal) => void (await bot.api.sendMessage({ chat_id: chatId, text }, signal)), logger, metrics: deps.metrics });
  let lease: Lease;
  let redisLife: Lifecycle[] = [];
  let client: Redis | undefined;
  let state: BotState;
  if (config.redis) {
    // No offline queue and a command timeout: a lease call must fail soon while Redis is away
    // or hung, not wait in line (leadership runs out by the clock meanwhile).
    const redis = new Redis(config.redis.url, {
      lazyConnect: true,
      enableOfflineQueue: false,
      maxRetriesPerRequest: 1,
      connectTimeout: 5000,
      commandTimeout: Math.max(1000, tg.leaseTtlMs),
      retryStrategy: (n) => redisRetryDelay(n),
    });
    redis.on("error", () => undefined);
    client = redis;
    redisLife = [
      {
        name: "redis",
        start: async () => {
          // The connection retries by itself; until then the lease counts as unreachable.
          await redis.connect().catch((err: unknown) => logger.warn({ err }, "cannot reach Redis yet; retrying in the background"));
        },
        close: async () => void redis.disconnect(),
      },
    ];
    lease = new RedisLease({ redis, logger }, { key: `${config.redis.prefix}leader`, ttlMs: tg.leaseTtlMs, instance: config.instance });
    state = new RedisBotState(redis, config.redis.prefix);
  } else {
    logger.warn("no redis in the config: this replica sends every alert itself (run only one)");
    lease = new LocalLease();
    state = new MemoryBotState();
  }
  const targets = config.targets.map((t) => t.name);
  const telegramBot = new TelegramBot({
    config: tg,
    bot,
    members,
    outbox,
    lease,
    state,
    hosts: () => hostViews(deps.monitor, targets),
    status: async () => statusRows(deps.monitor, targets, await upSince(deps.db).catch(() => new Map<string, Date>())),
    logger,
    now: deps.now,
    metrics: deps.metrics,
    silences: deps.silences,
  });
  const alerter = new Alerter(
    { monitor: deps.monitor, lease, outbox, state, recipients: () => members.recipients(), logger, now: deps.now, metrics: deps.metrics, silences: deps.silences },
    { intervalMs: tg.alertIntervalMs },
  );
  return { parts: { bot: telegramBot, alerter, outbox, lease, members, state }, before: [...redisLife, outbox], after: [lease, alerter, telegramBot], redis: client };
}

async function pingRedis(redis: Redis): Promise<void> {
  if (redis.status !== "ready") throw new Error(`redis ${redis.status}`);
  await redis.ping();
}
