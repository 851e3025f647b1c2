#!/bin/sh
# `redis-server ARGS`: as the redis user in /data, protected mode off (as in the official image).
set -eu
if [ "${1:-}" = redis-server ]; then
  shift
  if [ "$(id -u)" = 0 ]; then
    chown -R redis:redis /data
    exec setpriv --reuid=redis --regid=redis --init-groups redis-server --protected-mode no --dir /data "$@"
  fi
  exec redis-server --protected-mode no --dir /data "$@"
fi
exec "$@"
