/**
 * Tests that assert a latency a user would see (a p99 under attack): run by `pnpm test` after
 * the main jest run, one file at a time, so the number measures pesan under the attack and not
 * another test file's cluster busy on the same 2 cores (in the main run, a second jest worker
 * pushed the p99 of the per-IP sweep test from ~25 ms to 208 ms).
 */
const main = require("../../jest.config.cjs");

module.exports = {
  ...main,
  rootDir: "../..",
  testMatch: ["<rootDir>/test/alone/**/*.test.ts"],
  testPathIgnorePatterns: main.testPathIgnorePatterns.filter((p) => !/test\/(compose|alone)\/$/.test(p)),
  maxWorkers: 1,
};
