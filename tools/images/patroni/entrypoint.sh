#!/bin/sh
# The roles of pesan-local/patroni (docker-compose.ha.yml):
#   etcd               an etcd member, configured by etcd's own ETCD_* variables
#   patroni            a Patroni node; its configuration is written from the variables below
#   health             the healthcheck: etcd answers a quorum read, or Patroni's GET /health
#                      (200 while this node's Postgres runs, leader or replica)
#   post-bootstrap URL run by Patroni once, after the first node's initdb: creates POSTGRES_DB
# Patroni's variables (docker-compose.ha.yml sets them; the defaults are Patroni's own):
#   PATRONI_NAME (required; also the address the others reach it at), PATRONI_SCOPE (pesan),
#   PATRONI_ETCD3_HOSTS (host:port,...), POSTGRES_PASSWORD (the superuser's, required),
#   PATRONI_REPLICATION_PASSWORD (required), POSTGRES_DB (pesan),
#   PESAN_PATRONI_API_PASSWORD (required): Basic auth (user patroni) of the REST API's unsafe
#   methods (POST /switchover, /restart, /reinitialize, PATCH /config...); GETs stay open,
#   PATRONI_PEER_HOST (PATRONI_NAME): the name the other nodes reach this one at,
#   PESAN_PG_SYNC: off | on | strict (Patroni's synchronous_mode, synchronous_mode_strict),
#   PATRONI_TTL (30), PATRONI_LOOP_WAIT (10), PATRONI_RETRY_TIMEOUT (10).
# The bootstrap settings (PESAN_PG_SYNC and the timings) are written into etcd when the cluster
# is first made; later changes go through `patronictl edit-config` (docs/ha.md).
set -eu
role="${1:-patroni}"
[ $# -gt 0 ] && shift
case "$role" in
etcd)
  mkdir -p /var/lib/etcd
  chown etcd:etcd /var/lib/etcd
  exec setpriv --reuid=etcd --regid=etcd --init-groups etcd "$@"
  ;;
health)
  if [ -n "${ETCD_NAME:-}" ]; then
    exec etcdctl --endpoints=http://127.0.0.1:2379 --command-timeout=2s endpoint health >/dev/null
  fi
  exec python3 -c 'import sys, urllib.request
try:
    sys.exit(0 if urllib.request.urlopen("http://127.0.0.1:8008/health", timeout=2).status == 200 else 1)
except Exception:
    sys.exit(1)'
  ;;
post-bootstrap)
  # Patroni passes a connection URL of the superuser (its password comes from the pgpass file).
  db="${POSTGRES_DB:-pesan}"
  [ "$db" = postgres ] || psql -v ON_ERROR_STOP=1 -q -d "$1" -c "CREATE DATABASE \"$db\""
  exit 0
  ;;
patroni) ;;
*) exec "$role" "$@" ;;
esac

: "${PATRONI_NAME:?PATRONI_NAME must be set (this node's name and host name)}"
: "${PATRONI_ETCD3_HOSTS:?PATRONI_ETCD3_HOSTS must be set (the etcd members, host:port,...)}"
: "${POSTGRES_PASSWORD:?POSTGRES_PASSWORD must be set (the superuser's password)}"
: "${PATRONI_REPLICATION_PASSWORD:?PATRONI_REPLICATION_PASSWORD must be set (the replication user's password)}"
: "${PESAN_PATRONI_API_PASSWORD:?PESAN_PATRONI_API_PASSWORD must be set (the REST API password for switchover, restart, reinitialize)}"
case "${PESAN_PG_SYNC:=on}" in
off | on | strict) ;;
*) echo "PESAN_PG_SYNC must be off, on or strict (got \"$PESAN_PG_SYNC\")" >&2; exit 2 ;;
esac
for v in PATRONI_TTL PATRONI_LOOP_WAIT PATRONI_RETRY_TIMEOUT; do
  eval "x=\${$v:-}"
  case "$x" in *[!0-9]*) echo "$v must be a whole number of seconds (got \"$x\")" >&2; exit 2 ;; esac
done
mkdir -p /var/lib/postgresql/data /var/run/postgresql
chown postgres:postgres /var/lib/postgresql/data /var/run/postgresql
# Written fresh at every start, readable by postgres only (it holds the passwords). JSON is
# YAML, and json.dumps quotes whatever the values hold.
umask 077
python3 - >/var/lib/postgresql/patroni.yml <<'PY'
import json, os
e = os.environ
sync = e["PESAN_PG_SYNC"]
name = e["PATRONI_NAME"]
peer = e.get("PATRONI_PEER_HOST") or name
hba = ["local all all trust", "host replication replicator all scram-sha-256", "host all all all scram-sha-256"]
print(json.dumps({
    "scope": e.get("PATRONI_SCOPE", "pesan"),
    "name": name,
    "log": {"level": "INFO"},
    # Patroni asks for the password on the unsafe methods only (POST, PUT, PATCH, DELETE): the
    # healthchecks' and the other nodes' GETs need none. patronictl reads it from here too.
    "restapi": {"listen": "0.0.0.0:8008", "connect_address": f"{peer}:8008",
                "authentication": {"username": "patroni", "password": e["PESAN_PATRONI_API_PASSWORD"]}},
    "etcd3": {"hosts": [h.strip() for h in e["PATRONI_ETCD3_HOSTS"].split(",") if h.strip()]},
    "bootstrap": {
        "dcs": {
            "ttl": int(e.get("PATRONI_TTL") or 30),
            "loop_wait": int(e.get("PATRONI_LOOP_WAIT") or 10),
            "retry_timeout": int(e.get("PATRONI_RETRY_TIMEOUT") or 10),
            "maximum_lag_on_failover": 1048576,
            # A crashed primary Postgres fails over instead of being restarted in place.
            "primary_start_timeout": 0,
            "synchronous_mode": sync != "off",
            "synchronous_mode_strict": sync == "strict",
            "postgresql": {
                # The old primary rejoins as a replica of the new one.
                "use_pg_rewind": True,
                "parameters": {"wal_level": "replica", "hot_standby": "on", "wal_log_hints": "on", "max_wal_senders": 10, "max_replication_slots": 10, "max_connections": 200},
            },
        },
        "initdb": [{"encoding": "UTF8"}, "data-checksums"],
        "post_bootstrap": "/usr/local/bin/entrypoint.sh post-bootstrap",
        "pg_hba": hba,
    },
    "postgresql": {
        "listen": "0.0.0.0:5432",
        "connect_address": f"{peer}:5432",
        # A directory below the volume's root: Patroni creates it with the mode Postgres wants.
        "data_dir": "/var/lib/postgresql/data/pgdata",
        "bin_dir": "/usr/lib/postgresql/15/bin",
        "pgpass": "/var/lib/postgresql/pgpass-patroni",
        # A replica's copy of the leader starts at once: pg_basebackup's default spread
        # checkpoint made it wait 90 s and more on an idle cluster.
        "basebackup": [{"checkpoint": "fast"}],
        "authentication": {
            "superuser": {"username": "postgres", "password": e["POSTGRES_PASSWORD"]},
            "replication": {"username": "replicator", "password": e["PATRONI_REPLICATION_PASSWORD"]},
        },
        "parameters": {"unix_socket_directories": "/var/run/postgresql"},
        "pg_hba": hba,
    },
    # No /dev/watchdog in a container; a primary that loses its leader key demotes itself.
    "watchdog": {"mode": "off"},
}, indent=2))
PY
chown postgres:postgres /var/lib/postgresql/patroni.yml
umask 022
cd /var/lib/postgresql
exec setpriv --reuid=postgres --regid=postgres --init-groups patroni /var/lib/postgresql/patroni.yml
