/** Unit tests sit beside the code, cross-service tests under test/. */
module.exports = {
  testEnvironment: "node",
  testMatch: ["<rootDir>/{packages,services,apps,tools}/*/src/**/*.test.ts", "<rootDir>/test/**/*.test.ts"],
  // The Compose end-to-end tests and the tests that must run alone have their own configs
  // (test/compose/jest.config.cjs, test/alone/jest.config.cjs), run after this one.
  testPathIgnorePatterns: ["/node_modules/", "<rootDir>/test/compose/", "<rootDir>/test/alone/"],
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
