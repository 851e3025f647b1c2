/**
 * The Compose end-to-end tests (real Docker engine, images from ./pesan images): run by
 * `pnpm test` after the main jest run, one file at a time (each brings a whole stack up).
 */
const main = require("../../jest.config.cjs");

module.exports = {
  ...main,
  rootDir: "../..",
  testMatch: ["<rootDir>/test/compose/**/*.test.ts"],
  // Only the files of a tool the run left out (--without docker: all of them).
  testPathIgnorePatterns: main.testPathIgnorePatterns.filter((p) => !/test\/(compose|alone)\/$/.test(p)),
  // No shared test database or Redis prefix: each stack has its own Postgres and Redis.
  globalSetup: undefined,
  globalTeardown: undefined,
  testTimeout: 300_000,
  maxWorkers: 1,
};
