# One image for every component; the command chooses it: order, inventory, payment, monitor, relay, setup, migrate, dlq.
#   docker build -t saga .        docker run --rm saga --help        docker run --rm saga check-config relay
# Behind a proxy or private registry whose CA npm must trust, hand the CA bundle in as a BuildKit secret (never a
# layer of the image): DOCKER_BUILDKIT=1 docker build --secret id=npm_ca,src="$(npm config get cafile)" -t saga .
# No `# syntax=` line: the Dockerfile frontend built into BuildKit does RUN --mount, and fetching another needs a
# registry.

# ---- the Node base image, one ARG for every stage ----
# Node 24 LTS (maintained until April 2028). The minor is pinned deliberately: moving to another minor or major is a
# reviewed change of this line (the Dockerfile test accepts only a supported LTS with a pinned minor). Rebuilds of the
# pinned minor (patch releases, Debian security updates) are taken by digest: a release pipeline that reaches a
# registry builds with the digest pinned,
#   docker build --build-arg NODE_IMAGE=node:24.11-bookworm-slim@sha256:<digest of that tag> -t saga .
# keeping that digest in its own configuration, where a bot such as Renovate proposes each new digest as a pull
# request that CI builds and tests. No digest is written here: none has been checked against the registry.
# The default stays the tag without a digest: the compose test builds this file against a local stand-in image
# tagged like the official one (test/compose/standins), where no registry can resolve a digest.
ARG NODE_IMAGE=node:24.11-bookworm-slim

# ---- build: all dependencies, TypeScript bundled into dist/saga.js ----
FROM ${NODE_IMAGE} AS build
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

# ---- deps: production dependencies only; no install script runs (none of them needs one: protobufjs's postinstall
# only prints a version-scheme warning) ----
FROM ${NODE_IMAGE} AS deps
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
    npm ci --omit=dev --ignore-scripts --no-audit --no-fund

# ---- run: the bundle and production dependencies, non-root, no build tools and no package manager ----
FROM ${NODE_IMAGE} AS run
ARG NODE_IMAGE
ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="saga-outbox-cdc" \
      org.opencontainers.image.description="Saga over a transactional outbox relayed to RabbitMQ by PostgreSQL logical replication: order, inventory and payment services, saga monitor, CDC relay, setup, migrate, dlq (one image, component by command)" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.base.name="docker.io/library/${NODE_IMAGE}" \
      org.opencontainers.image.vendor="saga-outbox-cdc"
# Nothing here installs anything at run time: npm, npx, corepack and yarn go (less to patch, nothing to fetch and run
# code from the network with).
RUN rm -rf /usr/local/lib/node_modules/npm /usr/local/bin/npm /usr/local/bin/npx \
    /usr/local/lib/node_modules/corepack /usr/local/bin/corepack /opt/yarn-* /usr/local/bin/yarn /usr/local/bin/yarnpkg
ENV NODE_ENV=production
WORKDIR /app
COPY --from=deps /app ./
COPY --from=build /app/dist dist
COPY migrations migrations
# The node image's unprivileged user (uid 1000); k8s runs it with a read-only root filesystem.
USER node
EXPOSE 8000 8001 8002 8003 8010 8100 8101 8102 8103
ENTRYPOINT ["node", "--enable-source-maps", "dist/saga.js"]
CMD ["--help"]
