// Kept alone so jest (which runs CommonJS) can map it to migrations-dir.cjs: import.meta
// does not exist there.
export const MIGRATIONS_DIR: string = new URL("../../migrations", import.meta.url).pathname;
