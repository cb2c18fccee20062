# Every service's image, from one file: the build argument APP names the app (apps/<APP>),
# PACKAGES the Debian packages for the commands it runs, DATA_DIRS the directories it writes.
# docker/compose.yaml (generated from tools/deploy/services.ts) passes them for each service; by hand,
# from the repository root:
#   docker build -f docker/service.Dockerfile --build-arg APP=vm-registry \
#     --build-arg PACKAGES="libvirt0 libvirt-clients" --build-arg DATA_DIRS=/var/lib/qubes .
# (Not built in this project's CI: its machines have no Docker engine.)
FROM node:20-bookworm AS build
# @unraid/libvirt is a native addon built against libvirt's headers.
RUN apt-get update && apt-get install -y --no-install-recommends libvirt-dev && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
# Every app is built here (this stage is the same for every service, so built once).
RUN npm ci --no-audit --no-fund && node tools/build.mjs
# The bundles carry their dependencies but the native ones (esbuild externals): install those
# alone, at the versions of package-lock.json, for the runtime image.
RUN mkdir /runtime && cd /runtime && echo '{"private":true}' > package.json \
 && npm install --no-audit --no-fund --omit=dev \
      "fs-ext@$(node -p "require('/src/node_modules/fs-ext/package.json').version")" \
      "@unraid/libvirt@$(node -p "require('/src/node_modules/@unraid/libvirt/package.json').version")"

FROM node:20-bookworm-slim
ARG APP
ARG PACKAGES=""
ARG DATA_DIRS=""
RUN test -n "$APP" || { echo 'build with --build-arg APP=<an app in apps/>' >&2; exit 1; }
# vm-registry: libvirt's client library for the addon and virsh for events (libvirtd stays on the
# host: mount its socket, set LIBVIRT_URI); storage: dmsetup and LVM (losetup is in the base).
RUN if [ -n "$PACKAGES" ]; then apt-get update && apt-get install -y --no-install-recommends $PACKAGES && rm -rf /var/lib/apt/lists/*; fi
COPY --from=build /src/dist/apps/${APP}/ /app/
COPY --from=build /runtime/node_modules/ /app/node_modules/
ENV QUBES_NATS_URL=nats://nats:4222 \
    LOG_LEVEL=info \
    LOG_FORMAT=json
# A named volume takes the owner of the directory it mounts over.
RUN if [ -n "$DATA_DIRS" ]; then mkdir -p $DATA_DIRS && chown node:node $DATA_DIRS; fi
USER node
CMD ["node", "--enable-source-maps", "/app/main.js"]
