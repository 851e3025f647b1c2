module.exports = { MIGRATIONS_DIR: require("node:path").join(__dirname, "..", "..", "migrations") };
