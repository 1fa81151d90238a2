# syntax=docker/dockerfile:1
# Conveyor worker image. Build: docker build -t conveyor .   Run: docker run conveyor
# Handler files live in /app/handlers (mount or COPY your own); config in /app/config.

# ---- build: compile TypeScript and the native Kafka client (librdkafka with zstd, SSL, SASL)
FROM node:24-bookworm-slim AS build
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 make g++ libssl-dev zlib1g-dev libzstd-dev libsasl2-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY package.json package-lock.json ./
# dynamic: librdkafka links Debian's OpenSSL, zstd, zlib and SASL, the same build the tests run against
RUN CKJS_LINKING=dynamic npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npx tsc -p tsconfig.build.json && npm prune --omit=dev --no-audit --no-fund

# ---- runtime: production dependencies only, non-root, tini as PID 1 forwards SIGTERM to node
FROM node:24-bookworm-slim AS runtime
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends libssl3 libsasl2-2 libzstd1 zlib1g tini \
 && rm -rf /var/lib/apt/lists/*
ENV NODE_ENV=production
# the main thread's heap for the default memory budget (memory.budgetMb 512; docs/configuration.md, "Memory
# budget"): change both together. Without them V8 sizes the heap from the node's memory, not the container's budget.
ENV CONVEYOR_MEMORY_BUDGET_MB=512
ENV NODE_OPTIONS="--max-semi-space-size=8 --max-old-space-size=148"
WORKDIR /app
COPY --from=build --chown=node:node /app/package.json ./
COPY --from=build --chown=node:node /app/node_modules ./node_modules
COPY --from=build --chown=node:node /app/dist ./dist
COPY --chown=node:node handlers ./handlers
COPY --chown=node:node config ./config
# numeric: the image's "node" user; lets Kubernetes runAsNonRoot verify it
USER 1000:1000
# ops server: metrics and health
EXPOSE 8083
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/bin/tini", "--"]
CMD ["node", "dist/runner.js", "--config", "config/production.yaml"]
