# vm-registry: the sole writer of qubes.xml.
# Built from the repository root:  docker build -f docker/vm-registry.Dockerfile .
# (Not built in this project's CI: its machines have no Docker engine.)
FROM node:20-bookworm AS build
WORKDIR /src
COPY . .
RUN npm ci --no-audit --no-fund && node tools/build.mjs

# The bundle carries its dependencies but one: fs-ext, a native addon (file locks), built above.
FROM node:20-bookworm-slim
COPY --from=build /src/dist/apps/vm-registry/ /app/
COPY --from=build /src/node_modules/fs-ext/ /app/node_modules/fs-ext/
ENV QUBES_DATA_DIR=/var/lib/qubes \
    QUBES_NATS_URL=nats://nats:4222 \
    LOG_LEVEL=info \
    LOG_FORMAT=json
# A named volume takes the owner of the directory it mounts over.
RUN mkdir -p /var/lib/qubes && chown node:node /var/lib/qubes
VOLUME /var/lib/qubes
USER node
CMD ["node", "--enable-source-maps", "/app/main.js"]
