#!/bin/sh
# The nginx container's entrypoint in both Compose files (the same in nginx:1.28-alpine and in
# the Debian stand-in, so only POSIX sh and getent). nginx resolves an upstream's service name
# to every replica once, when it (re)loads its config; open-source nginx before 1.27.3 cannot
# re-resolve by itself. So this loop looks the names up every PESAN_NGINX_WATCH_INTERVAL seconds
# and reloads nginx when an address appears that it does not have yet (`--scale` added a
# replica, or one came back with a new address). A replica that disappears needs no reload:
# passive failover (max_fails) already skips it, and a reload would move every client to a
# new nginx UDP session (they would all have to RESUME), so it is not done for that.
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
    added=""
    for a in $now; do
      case " $known " in *" $a "*) ;; *) added="$added $a" ;; esac
    done
    [ -n "$added" ] || continue
    echo "pesan nginx: new upstream address(es)$added for $names; reloading" >&2
    if nginx -s reload; then known="$now"; fi
  done
}

if [ -n "$names" ]; then
  known=$(addresses)
  watch "$known" &
fi
exec nginx -g 'daemon off;'
