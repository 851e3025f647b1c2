#!/bin/sh
# `redis-server [CONFIG-FILE] ARGS`: as the redis user in /data, protected mode off (as in the
# official image). A config file stays the first argument, where redis-server wants it (the
# sentinels of docker-compose.ha.yml run `redis-server /data/sentinel.conf --sentinel`).
set -eu
if [ "${1:-}" = redis-server ]; then
  shift
  conf=""
  case "${1:-}" in *.conf) conf=$1; shift ;; esac
  if [ "$(id -u)" = 0 ]; then
    chown -R redis:redis /data
    exec setpriv --reuid=redis --regid=redis --init-groups redis-server ${conf:+"$conf"} --protected-mode no --dir /data "$@"
  fi
  exec redis-server ${conf:+"$conf"} --protected-mode no --dir /data "$@"
fi
exec "$@"
