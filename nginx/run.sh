#!/bin/sh
# The nginx container's entrypoint in both Compose files (the same in nginx:1.28-alpine and in
# the Debian stand-in, so only POSIX sh and getent). nginx resolves an upstream's service name
# to every replica once, when it (re)loads its config; open-source nginx before 1.27.3 cannot
# re-resolve by itself. So this loop looks the names in PESAN_NGINX_WATCH up every
# PESAN_NGINX_WATCH_INTERVAL seconds and reloads nginx when the set of addresses changed:
# - one appeared (`--scale` added a replica, or one came back with a new address);
# - one disappeared (a gateway died): nginx gets no error from a dead container's address
#   (the bridge answers nothing, and ICMP "host unreachable" is a soft error UDP sockets do not
#   report), so without a reload its clients' UDP sessions would keep going to it for
#   proxy_timeout (180 s). After the reload every client's next datagram opens a new session
#   to a live gateway, which answers NOT_LOGGED_IN, and the client RESUMEs (a few 100 ms).
# No reload while a name resolves to nothing (Docker's DNS restarting, or nothing to balance to).
set -eu
names="${PESAN_NGINX_WATCH:-}"
interval="${PESAN_NGINX_WATCH_INTERVAL:-2}"

addresses() {
  for n in $names; do getent ahostsv4 "$n" 2>/dev/null | awk '{ print $1 }'; done | sort -u | tr '\n' ' '
}

watch() {
  known="$1"
  while sleep "$interval"; do
    now=$(addresses)
    [ -n "$now" ] && [ "$now" != "$known" ] || continue
    for n in $names; do getent ahostsv4 "$n" >/dev/null 2>&1 || continue 2; done
    echo "pesan nginx: upstream addresses of $names changed from [ $known] to [ $now]; reloading" >&2
    if nginx -s reload; then known="$now"; fi
  done
}

if [ -n "$names" ]; then
  known=$(addresses)
  watch "$known" &
fi
exec nginx -g 'daemon off;'
