# One Dockerfile, one target per service:  docker build --target router -t pesan/router .
# Targets: udp-gateway, router, monitor-bot, peer-sync, embedded (all in one process).
# `./pesan images` builds them all (and local base images where Docker Hub is out of reach).
# Node 24 runs the TypeScript sources directly (type stripping), so there is no build step:
# each image holds its service's sources, the shared package, and production dependencies only.
ARG NODE_IMAGE=node:24.11.1-bookworm-slim

# One dependency install for every service (the legacy builder, which docker-compose 1.29
# uses, builds every stage before the target; one install stage keeps that to one install,
# cached until a package.json or the lockfile changes). Each image gets all services'
# production dependencies: a few MB more than its own, for one install instead of five.
FROM ${NODE_IMAGE} AS deps
ENV CI=true
WORKDIR /app
# ./pesan images puts the host's CA bundle here when the registry is reached through a
# TLS-intercepting proxy; only this stage sees it.
COPY tools/images/ca/ /tmp/pesan-ca/
COPY package.json pnpm-lock.yaml pnpm-workspace.yaml ./
COPY packages/shared/package.json packages/shared/
COPY packages/client/package.json packages/client/
COPY services/udp-gateway/package.json services/udp-gateway/
COPY services/router/package.json services/router/
COPY apps/embedded/package.json apps/embedded/
COPY tools/cluster/package.json tools/cluster/
COPY services/monitor-bot/package.json services/monitor-bot/
COPY services/peer-sync/package.json services/peer-sync/
RUN set -eu; \
  if [ -s /tmp/pesan-ca/ca.crt ]; then export NODE_EXTRA_CA_CERTS=/tmp/pesan-ca/ca.crt npm_config_cafile=/tmp/pesan-ca/ca.crt; fi; \
  npm install -g --no-fund --no-audit pnpm@12.21.0; \
  pnpm install --frozen-lockfile --prod; \
  npm uninstall -g pnpm; npm cache clean --force; rm -rf /root/.cache /root/.local/share/pnpm /tmp/pesan-ca

# --- runtime images -------------------------------------------------------------------------
FROM ${NODE_IMAGE} AS runtime
ENV NODE_ENV=production HTTP_HOST=0.0.0.0
WORKDIR /app
# Health is /healthz on HTTP_PORT; node's fetch keeps the image free of curl.
HEALTHCHECK --interval=5s --timeout=3s --start-period=20s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:'+process.env.HTTP_PORT+'/healthz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
# SIGTERM: each service finishes the batch in hand, closes in reverse order, exits.
STOPSIGNAL SIGTERM

FROM runtime AS udp-gateway
COPY --from=deps /app /app
COPY packages/shared packages/shared
COPY services/udp-gateway services/udp-gateway
ENV HTTP_PORT=9100 UDP_PORT=4999
EXPOSE 4999/udp 9100
USER node
CMD ["node", "services/udp-gateway/src/main.ts"]

FROM runtime AS router
COPY --from=deps /app /app
COPY packages/shared packages/shared
COPY services/router services/router
ENV HTTP_PORT=9200
EXPOSE 9200
USER node
CMD ["node", "services/router/src/main.ts"]

FROM runtime AS monitor-bot
COPY --from=deps /app /app
COPY packages/shared packages/shared
COPY packages/client packages/client
COPY services/monitor-bot services/monitor-bot
ENV HTTP_PORT=8080 MONITOR_CONFIG=/app/services/monitor-bot/monitor.compose.yaml
EXPOSE 8080
USER node
CMD ["node", "services/monitor-bot/src/main.ts"]

FROM runtime AS peer-sync
COPY --from=deps /app /app
COPY packages/shared packages/shared
COPY packages/client packages/client
COPY services/peer-sync services/peer-sync
ENV HTTP_PORT=9300 SYNC_LISTEN=0.0.0.0:7000
EXPOSE 7000 9300
USER node
CMD ["node", "services/peer-sync/src/main.ts"]

FROM runtime AS embedded
COPY --from=deps /app /app
COPY packages/shared packages/shared
COPY packages/client packages/client
COPY services/udp-gateway services/udp-gateway
COPY services/router services/router
COPY services/monitor-bot services/monitor-bot
COPY apps/embedded apps/embedded
ENV HTTP_PORT=9090 DATA_DIR=/data MONITOR_HOST=0.0.0.0
RUN mkdir -p /data && chown node:node /data
VOLUME /data
EXPOSE 4999/udp 9090 8080
USER node
CMD ["node", "--liftoff-only", "apps/embedded/src/main.ts"]
