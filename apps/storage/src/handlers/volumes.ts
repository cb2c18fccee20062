import { rm } from 'node:fs/promises';
import { destOf, receiveBytes, type HandlerContext, type Router } from '@qubes-bus/bus';
import {
  AdminVmVolumeClear,
  AdminVmVolumeCloneCancel,
  AdminVmVolumeCloneFrom,
  AdminVmVolumeCloneTo,
  AdminVmVolumeImport,
  AdminVmVolumeImportWithSize,
  AdminVmVolumeInfo,
  AdminVmVolumeList,
  AdminVmVolumeListSnapshots,
  AdminVmVolumeResize,
  AdminVmVolumeRevert,
  AdminVmVolumeSetRevisionsToKeep,
  AdminVmVolumeSetRw,
  PowerState,
  QubesError,
  RegistryResizeDisk,
  type VmStorage,
} from '@qubes-bus/contracts';
import { frontends } from '../volume-config';
import { requireHalted, type Storage, type VmVolume, type VolumeAction } from '../storage';

/** admin.vm.volume.*: one VM's volumes (qubes/api/admin.py vm_volume_*). */
export function registerVolumeHandlers(router: Router, storage: Storage): void {
  router.serve(AdminVmVolumeList, async (_request, ctx) => {
    const state = await storage.vmStorage(ctx, destOf(ctx));
    return state.volumes.map((attrs) => attrs['name'] ?? '');
  });

  router.serve(AdminVmVolumeInfo, async ({ arg }, ctx) => {
    const state = await storage.vmStorage(ctx, destOf(ctx));
    const { config, volume } = storage.volumeOf(state, arg);
    return {
      pool: config.pool,
      vid: config.vid,
      size: config.size,
      usage: await volume.usage(),
      rw: config.rw,
      snap_on_start: config.snap_on_start,
      save_on_stop: config.save_on_stop,
      source: config.source,
      revisions_to_keep: config.revisions_to_keep,
      is_outdated: await volume.isOutdated(),
    };
  });

  router.serve(AdminVmVolumeListSnapshots, async ({ arg }, ctx) => {
    const state = await storage.vmStorage(ctx, destOf(ctx));
    return (await storage.volumeOf(state, arg).volume.revisions()).map((r) => r.name);
  });

  /**
   * One change to one volume, the VM's volume operations held off meanwhile: `halted` says what
   * needs the VM halted (for the message); `change` does it and says what happened; the config is
   * then saved through the registry and the change told.
   */
  const changeVolume = (
    ctx: HandlerContext,
    name: string,
    halted: string | null,
    change: (target: VmVolume, state: VmStorage) => Promise<VolumeAction | null>,
  ): Promise<null> =>
    storage.withVm(destOf(ctx), async () => {
      const state = await storage.vmStorage(ctx, destOf(ctx));
      if (halted !== null) requireHalted(state, halted);
      const target = storage.volumeOf(state, name);
      const action = await change(target, state);
      if (action === null) return null;
      await storage.saveVolume(ctx, state, target);
      storage.changed(state.vm, name, action, target.config.size);
      return null;
    });

  router.serve(AdminVmVolumeRevert, ({ arg, payload }, ctx) =>
    changeVolume(ctx, arg, `reverting its ${arg} volume`, async ({ volume }) => {
      await volume.revert(payload?.revision);
      return 'revert';
    }),
  );

  // A running VM's volume grows too (its running image does), and its domain is told so that
  // the guest sees the new size at once (Qubes: losetup --set-capacity, then qubes.ResizeDisk in
  // the VM). A domain that cannot be told (a device-mapper layer that keeps its size) sees it at
  // the next start: the resize itself stands.
  router.serve(AdminVmVolumeResize, async ({ arg, payload }, ctx) => {
    let running: VmStorage | null = null;
    await changeVolume(ctx, arg, null, async ({ volume, config }, state) => {
      if (payload.size === config.size) return null;
      await volume.resize(payload.size);
      if (state.power_state !== PowerState.Halted) running = state;
      return 'resize';
    });
    if (running !== null) await tellDomain(ctx, running, arg, payload.size);
    return null;
  });

  router.serve(AdminVmVolumeSetRevisionsToKeep, ({ arg, payload }, ctx) =>
    changeVolume(ctx, arg, null, async ({ config }) => {
      config.revisions_to_keep = payload.value;
      return 'set';
    }),
  );

  router.serve(AdminVmVolumeSetRw, ({ arg, payload }, ctx) =>
    changeVolume(ctx, arg, `changing whether it may write its ${arg} volume`, async ({ config }) => {
      config.rw = payload.value;
      return 'set';
    }),
  );

  router.serve(AdminVmVolumeClear, ({ arg }, ctx) =>
    changeVolume(ctx, arg, `clearing its ${arg} volume`, async ({ volume }) => {
      await volume.importData((async function* () {})());
      return 'clear';
    }),
  );

  const startImport = async (arg: string, size: number | undefined, ctx: HandlerContext) => {
    const vm = destOf(ctx);
    const release = await storage.holdVm(vm);
    let scratch: string | null = null;
    try {
      const state = await storage.vmStorage(ctx, vm);
      requireHalted(state, `importing into its ${arg} volume`);
      const target = storage.volumeOf(state, arg);
      if (!target.config.save_on_stop) await target.volume.exportPath(); // VOLUME_NOT_PERSISTENT, before any data comes
      // A sender on this host with the data in a file may write it into a file beside the volume
      // (Qubes' import_data path): in-kernel copies, or a reflink; the import then copies it
      // (a reflink too), so what the sender can still write is not the volume.
      scratch = await storage.scratchFileFor(target.volume);
      const file = scratch;
      const stream = await receiveBytes<{ bytes: number }>(storage.bus.nc, { localDir: storage.localDir, ...(file === null ? {} : { file }) });
      // The data comes after this call is answered: the import runs on, holding the VM's lock.
      void (async () => {
        let outcome: { ok: true; value: { bytes: number } } | { ok: false; error: QubesError };
        try {
          const options = { size, onProgress: storage.progress(vm, arg, 'import') };
          let imported: { bytes: number };
          if ((await stream.begun) === 'file') {
            for await (const _none of stream.chunks) {
              // nothing: the chunks end at the sender's end mark, once the file is written
            }
            imported = await target.volume.importFile(file!, options);
          } else {
            // the stream's chunks are fresh buffers: the writer takes them as they are
            imported = await target.volume.importData(stream.chunks, { ...options, handOver: true });
          }
          await storage.saveVolume(ctx, state, target);
          storage.changed(vm, arg, 'import', target.config.size);
          ctx.log.info({ vm, volume: arg, bytes: imported.bytes, via: stream.via }, 'volume imported');
          outcome = { ok: true, value: imported };
        } catch (err) {
          ctx.log.warn({ err, vm, volume: arg }, 'volume import failed');
          if (!(err instanceof QubesError)) ctx.log.error({ err }, 'import failed unexpectedly');
          outcome = { ok: false, error: err instanceof QubesError ? err : new QubesError('INTERNAL', `the import failed (request ${ctx.reqId})`) };
        }
        // the sender's file goes before the answer: what the sender sees done is done
        if (file !== null) await rm(file, { force: true }).catch((err: unknown) => ctx.log.warn({ err, file }, 'an import file could not be removed'));
        try {
          stream.finish(outcome);
        } catch (err) {
          ctx.log.warn({ err, vm, volume: arg }, 'the import outcome could not be sent (the bus is closing?)');
        } finally {
          release();
        }
      })();
      return { stream: stream.subject, chunk_bytes: stream.chunkBytes, window: stream.window, socket: stream.socket, token: stream.token, file: stream.file };
    } catch (err) {
      if (scratch !== null) await rm(scratch, { force: true });
      release();
      throw err;
    }
  };

  router.serve(AdminVmVolumeImport, ({ arg }, ctx) => startImport(arg, undefined, ctx));
  router.serve(AdminVmVolumeImportWithSize, ({ arg, payload }, ctx) => startImport(arg, payload.size, ctx));

  router.serve(AdminVmVolumeCloneFrom, async ({ arg }, ctx) => {
    const state = await storage.vmStorage(ctx, destOf(ctx));
    await storage.volumeOf(state, arg).volume.exportPath(); // persistent, and there
    return { token: storage.newCloneToken(state.vm, arg) };
  });

  // The copy runs in this service alone: nothing else (the registry least of all) waits for it,
  // only this VM's other volume operations.
  router.serve(AdminVmVolumeCloneTo, ({ arg, payload }, ctx) => {
    const source = storage.takeCloneToken(payload.token);
    const vm = destOf(ctx);
    return storage.withVm(vm, async () => {
      const state = await storage.vmStorage(ctx, vm);
      requireHalted(state, `cloning into its ${arg} volume`);
      const target = storage.volumeOf(state, arg);
      const from = storage.volumeOf(await storage.vmStorage(ctx, source.vm), source.volume);
      const cancel = storage.cancellable(vm, arg);
      try {
        const result = await target.volume.importVolume(from.volume, { signal: cancel.signal, onProgress: storage.progress(vm, arg, 'clone') });
        await storage.saveVolume(ctx, state, target);
        storage.changed(vm, arg, 'clone', target.config.size);
        ctx.log.info({ vm, volume: arg, from: source, ...result }, 'volume cloned');
        return result;
      } finally {
        cancel.done();
      }
    });
  });

  router.serve(AdminVmVolumeCloneCancel, ({ arg }, ctx) => storage.cancel(destOf(ctx), arg));
}

/** Tells a running VM's domain that a volume grew; a domain that cannot be told is logged. */
async function tellDomain(ctx: HandlerContext, state: VmStorage, volume: string, size: number): Promise<void> {
  const frontend = frontends(state.volumes.map((attrs) => attrs['name'] ?? '')).get(volume);
  if (frontend === undefined) return;
  try {
    const { told } = await ctx.request(RegistryResizeDisk, { payload: { vm: state.vm, frontend, size } });
    if (told) ctx.log.info({ vm: state.vm, volume, size }, 'the running VM was told its volume grew');
  } catch (err) {
    ctx.log.warn({ err, vm: state.vm, volume }, 'the running VM could not be told its volume grew: it sees the new size at its next start');
  }
}
