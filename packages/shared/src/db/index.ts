export { type Db, type Listener, type Queryable, type QueryResult, type Row, type Statement, type TransactionOptions, prepared, PgDb, PgliteDb, openDb, isRetryable, CHANNELS, DEFAULT_QUERY_TIMEOUT_MS } from "./db.ts";
export { migrate, loadMigrations, MIGRATIONS_DIR, type Migration, type MigrateOptions } from "./migrate.ts";
export { isTransientDbError, isConnectionUnusable } from "./transient.ts";
export { parsePgTarget, PgUrlError, type PgHost, type PgTarget } from "./hosts.ts";
export { insertUser, type NewUser } from "./users.ts";
