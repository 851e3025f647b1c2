export { type Db, type Queryable, type QueryResult, type Row, PgDb, PgliteDb, openDb, isRetryable } from "./db.ts";
export { migrate, loadMigrations, MIGRATIONS_DIR, type Migration, type MigrateOptions } from "./migrate.ts";
export { isTransientDbError } from "./transient.ts";
