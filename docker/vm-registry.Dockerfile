# vm-registry: the sole writer of qubes.xml, and the VM lifecycle through libvirt.
# Built from the repository root:  docker build -f docker/vm-registry.Dockerfile .
# (Not built in this project's CI: its machines have no Docker engine.)
FROM node:20-bookworm AS build
# @unraid/libvirt is a native addon built against libvirt's headers.
RUN apt-get update && apt-get install -y --no-install-recommends libvirt-dev && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN npm ci --no-audit --no-fund && node tools/build.mjs
# The bundle carries its dependencies but the native ones (esbuild externals): install those
# alone, at the versions of package-lock.json, for the runtime image.
RUN mkdir /runtime && cd /runtime && echo '{"private":true}' > package.json \
 && npm install --no-audit --no-fund --omit=dev \
      "fs-ext@$(node -p "require('/src/node_modules/fs-ext/package.json').version")" \
      "@unraid/libvirt@$(node -p "require('/src/node_modules/@unraid/libvirt/package.json').version")"

FROM node:20-bookworm-slim
# libvirt's client library for the addon, virsh for events; libvirtd stays on the host
# (mount its socket, set LIBVIRT_URI=qemu:///system or xen:///system).
RUN apt-get update && apt-get install -y --no-install-recommends libvirt0 libvirt-clients && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/dist/apps/vm-registry/ /app/
COPY --from=build /runtime/node_modules/ /app/node_modules/
ENV QUBES_DATA_DIR=/var/lib/qubes \
    QUBES_NATS_URL=nats://nats:4222 \
    LOG_LEVEL=info \
    LOG_FORMAT=json
# A named volume takes the owner of the directory it mounts over.
RUN mkdir -p /var/lib/qubes && chown node:node /var/lib/qubes
VOLUME /var/lib/qubes
USER node
CMD ["node", "--enable-source-maps", "/app/main.js"]
