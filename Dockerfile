# One image for every component; the command chooses it: order, inventory, payment, monitor, relay, setup, migrate, dlq.
#   docker build -t saga .        docker run --rm saga --help        docker run --rm saga check-config relay
# Behind a proxy or private registry whose CA npm must trust, hand the CA bundle in as a BuildKit secret (never a
# layer of the image): DOCKER_BUILDKIT=1 docker build --secret id=npm_ca,src="$(npm config get cafile)" -t saga .
# No `# syntax=` line: the Dockerfile frontend built into BuildKit does RUN --mount, and fetching another needs a
# registry.

# ---- build: all dependencies, TypeScript bundled into dist/saga.js ----
# Node 24 LTS (maintained until April 2028), minor pinned: bump it deliberately.
FROM node:24.11-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json tsconfig.json ./
COPY packages/common/package.json packages/common/
COPY services/order/package.json services/order/
COPY services/inventory/package.json services/inventory/
COPY services/payment/package.json services/payment/
COPY services/monitor/package.json services/monitor/
COPY cdc-relay/package.json cdc-relay/
RUN --mount=type=secret,id=npm_ca \
    if [ -s /run/secrets/npm_ca ]; then export NPM_CONFIG_CAFILE=/run/secrets/npm_ca; fi; \
    npm ci --no-audit --no-fund
COPY packages/common/src packages/common/src
COPY services/order/src services/order/src
COPY services/inventory/src services/inventory/src
COPY services/payment/src services/payment/src
COPY services/monitor/src services/monitor/src
COPY cdc-relay/src cdc-relay/src
COPY scripts scripts
RUN npm run build

# ---- run: production dependencies only, non-root, no build tools ----
FROM node:24.11-bookworm-slim AS run
ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="saga-outbox-cdc" \
      org.opencontainers.image.description="Saga over a transactional outbox relayed to RabbitMQ by PostgreSQL logical replication: order, inventory and payment services, saga monitor, CDC relay, setup, migrate, dlq (one image, component by command)" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.base.name="docker.io/library/node:24.11-bookworm-slim" \
      org.opencontainers.image.vendor="saga-outbox-cdc"
ENV NODE_ENV=production
WORKDIR /app
COPY package.json package-lock.json ./
COPY packages/common/package.json packages/common/
COPY services/order/package.json services/order/
COPY services/inventory/package.json services/inventory/
COPY services/payment/package.json services/payment/
COPY services/monitor/package.json services/monitor/
COPY cdc-relay/package.json cdc-relay/
RUN --mount=type=secret,id=npm_ca \
    if [ -s /run/secrets/npm_ca ]; then export NPM_CONFIG_CAFILE=/run/secrets/npm_ca; fi; \
    npm ci --omit=dev --no-audit --no-fund && npm cache clean --force
COPY --from=build /app/dist dist
COPY migrations migrations
# The node image's unprivileged user (uid 1000); k8s runs it with a read-only root filesystem.
USER node
EXPOSE 8000 8001 8002 8003 8010
ENTRYPOINT ["node", "--enable-source-maps", "dist/saga.js"]
CMD ["--help"]
