# One image for every hub service; compose picks the service by its command, e.g.
#   docker run ionflux-hub services/webhook-ingester/main.ts
# TypeScript runs through tsx (a runtime dependency), so there is no build step.
FROM node:20-bookworm-slim

ENV NODE_ENV=production
WORKDIR /app

# Dependencies first, so code changes reuse this layer; patches/ is applied by npm ci's postinstall
# (patch-package, a runtime dependency for that reason).
COPY package.json package-lock.json ./
COPY patches/ patches/
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force

COPY tsconfig.json ./
COPY shared/ shared/
COPY services/ services/
COPY schemas/ schemas/
COPY bin/ bin/

# Code stays root-owned (read-only to the service); only the local secret store's folder is
# writable, for when no VAULT_TOKEN is set.
RUN mkdir -p /app/.ionflux && chown node:node /app/.ionflux
USER node

ENTRYPOINT ["node", "--import", "tsx"]
CMD ["services/webhook-ingester/main.ts"]
