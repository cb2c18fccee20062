import type { Router } from '@qubes-bus/bus';
import { createReadStream, existsSync } from 'node:fs';
import path from 'node:path';
import { sendBytes } from '@qubes-bus/bus';
import { StorageCreateVolumes, StorageExportVolume, StoragePostStop, StoragePreStart, StorageRemoveVolumes, type DiskInfo } from '@qubes-bus/contracts';
import { frontends, toAttrs } from '../volume-config';
import type { Storage, VmVolume } from '../storage';

/** The registry's calls: a new VM's volumes, a removed VM's, and each run's start and stop. */
export function registerVmHooks(router: Router, storage: Storage): void {
  router.serve(StorageCreateVolumes, async ({ payload }, ctx) => {
    const made = await storage.createVolumes(payload.vm, payload.template, payload.pool);
    for (const { config } of made) storage.changed(payload.vm.vm, config.name, 'create', config.size);
    ctx.log.info({ vm: payload.vm.vm, volumes: made.map((v) => v.config.vid) }, 'volumes created');
    return { volumes: made.map((v) => toAttrs(v.config)) };
  });

  router.serve(StorageRemoveVolumes, ({ payload }, ctx) =>
    storage.withVm(payload.vm.vm, async () => {
      const volumes = storage.volumesOf(payload.vm);
      await storage.removeVolumes(volumes);
      for (const { config } of volumes) storage.changed(payload.vm.vm, config.name, 'remove', 0);
      ctx.log.info({ vm: payload.vm.vm, volumes: volumes.map((v) => v.config.vid) }, 'volumes removed');
      return null;
    }),
  );

  // Before a run: snapshots taken, volatile reset, dirty images opened; answers the disks.
  // A VM that has no volume config yet (created offline) gets its volumes now.
  router.serve(StoragePreStart, ({ payload }, ctx) =>
    storage.withVm(payload.vm, async () => {
      const state = await storage.vmStorage(ctx, payload.vm);
      let volumes: VmVolume[];
      if (state.volumes.length > 0) {
        volumes = storage.volumesOf(state);
      } else {
        const template = state.template === null ? null : await storage.vmStorage(ctx, state.template);
        volumes = await storage.createVolumes(state, template, undefined);
        if (volumes.length > 0) await storage.saveVolumes(ctx, state.vm, volumes);
      }
      const kernel = volumes.find((v) => v.config.name === 'kernel');
      if (kernel !== undefined && state.kernel !== null && kernel.config.vid !== state.kernel) {
        // the kernel property moved on: the volume follows it (it reads its vid from this config)
        kernel.config.vid = state.kernel;
        await storage.saveVolumes(ctx, state.vm, volumes);
      }
      return startVolumes(volumes.filter((v) => v.config.name !== 'kernel' || state.kernel !== null), storage, payload.vm);
    }),
  );

  // A backup reads the committed image (a run's writes are not in it yet, as in Qubes). It is
  // opened before the VM's lock is let go: a commit that renames a new image in meanwhile does
  // not change what this export reads.
  router.serve(StorageExportVolume, async ({ payload }, ctx) => {
    const file = await storage.withVm(payload.vm, async () => {
      const state = await storage.vmStorage(ctx, payload.vm);
      const path = await storage.volumeOf(state, payload.volume).volume.exportPath();
      const stream = createReadStream(path, { highWaterMark: payload.chunk_bytes });
      await new Promise<void>((resolve, reject) => stream.once('open', () => resolve()).once('error', reject));
      return stream;
    });
    // a socket the caller names is used only in the services' own run directory
    const local = storage.localDir !== undefined && payload.socket != null && path.resolve(payload.socket).startsWith(`${path.resolve(storage.localDir)}${path.sep}`);
    await sendBytes(storage.bus.nc, payload.stream, file, { chunkBytes: payload.chunk_bytes, window: payload.window, ...(local ? { socket: payload.socket, token: payload.token } : {}) });
    return { bytes: file.bytesRead };
  });

  // After a run: a persistent volume's writes committed, the rest dropped. Each volume as far
  // as it goes: one that fails is logged and the others still stop.
  router.serve(StoragePostStop, ({ payload }, ctx) =>
    storage.withVm(payload.vm, async () => {
      const state = await storage.vmStorage(ctx, payload.vm);
      for (const { volume, config } of storage.volumesOf(state)) {
        try {
          await volume.stop();
        } catch (err) {
          ctx.log.error({ err, vm: payload.vm, vid: config.vid }, 'a volume could not be stopped');
        }
      }
      return null;
    }),
  );
}

async function startVolumes(volumes: VmVolume[], storage: Storage, vm: string): Promise<{ disks: DiskInfo[] }> {
  const started: VmVolume[] = [];
  try {
    for (const v of volumes) {
      await v.volume.start();
      started.push(v);
    }
  } catch (err) {
    // a start that fails half-way leaves nothing prepared
    for (const v of started.reverse()) await v.volume.stop().catch((stopErr: unknown) => storage.log.error({ err: stopErr, vm, vid: v.config.vid }, 'could not undo a volume start'));
    throw err;
  }
  const disks: DiskInfo[] = [];
  const frontendOf = frontends(volumes.map((v) => v.config.name));
  for (const { volume, config } of volumes) {
    // a kernel without a modules image (Qubes: block_device None) gives the VM no disk for it
    const device = volume.blockDevice;
    if (device === null) continue; // a layer of another volume (the file pool's HVM volatile)
    if (config.name === 'kernel' && !existsSync(device.path)) continue;
    disks.push({ path: device.path, type: device.type, frontend: frontendOf.get(config.name)!, read_only: !config.rw || device.readOnly === true });
  }
  return { disks };
}
