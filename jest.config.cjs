/** Unit tests sit beside the code, cross-service tests under test/. */
// The files of the tools a run left out (`./pesan test --without docker,...`, PESAN_TEST_WITHOUT)
// are not run; `./pesan test` lists them at the end. A missing tool that was not left out fails
// its files naming it (test/support/needs.ts). Node requires the .ts table natively.
const { ignoredTestPatterns } = require("./tools/preflight/src/needs.ts");
const leftOut = ignoredTestPatterns(process.env.PESAN_TEST_WITHOUT);

module.exports = {
  testEnvironment: "node",
  testMatch: ["<rootDir>/{packages,services,apps,tools}/*/src/**/*.test.ts", "<rootDir>/test/**/*.test.ts"],
  // The Compose end-to-end tests and the tests that must run alone have their own configs
  // (test/compose/jest.config.cjs, test/alone/jest.config.cjs), run after this one.
  testPathIgnorePatterns: ["/node_modules/", "<rootDir>/test/compose/", "<rootDir>/test/alone/", ...leftOut],
  // Every file of a config may be left out (the Compose ones with --without docker).
  passWithNoTests: leftOut.length > 0,
  // fastify's inject() pulls cookie@2, which is ESM only; jest (without --experimental-vm-modules)
  // must compile it to CommonJS like our own code.
  transformIgnorePatterns: ["/node_modules/(?!(\\.pnpm|cookie)(/|@))"],
  transform: {
    "^.+\\.ts$": ["@swc/jest", { jsc: { target: "es2022", parser: { syntax: "typescript" } }, module: { type: "commonjs" } }],
    "/node_modules/cookie/.+\\.js$": ["@swc/jest", { jsc: { target: "es2022" }, module: { type: "commonjs" } }],
  },
  moduleNameMapper: {
    "^\\./migrations-dir(\\.ts)?$": "<rootDir>/packages/shared/src/db/migrations-dir.cjs",
    "^(\\.{1,2}/.*)\\.ts$": "$1",
  },
  globalSetup: "<rootDir>/test/global-setup.ts",
  globalTeardown: "<rootDir>/test/global-teardown.ts",
  testTimeout: 60000,
  maxWorkers: 2,
};
