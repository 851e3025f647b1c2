// Realistic data for statement timings: 5000 users, 3000 sessions, 100k messages, 20k dedup rows.
import { migrate, PgDb } from "@pesan/shared/db";
import pg from "pg";
const admin = new pg.Client({ connectionString: process.argv[2] });
await admin.connect();
// Never drops a database it did not make: a second run says so unless told to replace it.
const exists = (await admin.query("SELECT 1 FROM pg_database WHERE datname = 'plantimings'")).rowCount! > 0;
if (exists && process.argv[3] !== "--replace") {
  console.error("database plantimings exists (a previous run's?): pass --replace to drop and make it again");
  process.exit(2);
}
if (exists) await admin.query("DROP DATABASE plantimings WITH (FORCE)");
await admin.query("CREATE DATABASE plantimings");
await admin.end();
const u = new URL(process.argv[2]!); u.pathname = "/plantimings";
const db = new PgDb(u.toString());
await migrate(db);
await db.exec(`
INSERT INTO users (name, pass_hash, home_cluster) SELECT 'u' || i, 'x', 'c1' FROM generate_series(0, 4999) i;
INSERT INTO sessions (user_name, token, cluster, gateway, addr, login_at, last_heard, proof_key_id, proven, plain_ok)
  SELECT 'u' || i, md5('t' || i), 'c1', 'gw-' || (i % 2), '127.0.0.1:' || (10000 + i), now(), now(), 'k' || i, true, false FROM generate_series(0, 2999) i;
INSERT INTO messages (id, sent_at, sender, recipient, body, delivered, push_attempts)
  SELECT md5('m' || i), now() - (i || ' s')::interval, 'u' || (i % 4999), 'u' || ((i * 7) % 5000), 'hello ' || i, i % 33 <> 0, 1 FROM generate_series(0, 99999) i;
INSERT INTO send_dedup (token, tag, reply, created_at, message_id, entry_id)
  SELECT md5('t' || (i % 3000)), 'old' || i, 'OK SENT x', now() - (i % 120 || ' s')::interval, md5('m' || i), '1-' || i FROM generate_series(0, 19999) i;
ANALYZE;`);
await db.close();
console.log("ok");
