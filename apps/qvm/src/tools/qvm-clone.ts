import { Command } from 'commander';
import {
  AdminVmCreate,
  AdminVmFeature,
  AdminVmList,
  AdminVmProperty,
  AdminVmRemove,
  AdminVmTag,
  AdminVmVolumeCloneCancel,
  AdminVmVolumeCloneFrom,
  AdminVmVolumeCloneTo,
  AdminVmVolumeInfo,
  AdminVmVolumeList,
  CREATABLE_CLASSES,
  VolumeProgress,
  type CreatableClass,
  type PropertyValue,
} from '@qubes-bus/contracts';
import { UsageError } from '../errors';
import { progressBar } from '../progress';
import type { ToolContext } from '../tool';

/** Identity and what the new qube gets from its own creation: never copied. */
const NOT_CLONED = new Set(['name', 'qid', 'uuid', 'label', 'template', 'xid', 'stubdom_xid', 'start_time', 'backup_timestamp', 'dispid']);

/**
 * qvm-clone: a new qube with the class, template, label, properties, features and tags of
 * another, and a copy of each of its volumes that keeps data (qubesadmin/tools/qvm_clone.py,
 * Qubes' clone_properties and clone_disk_files): a reflink where the pool has them, else a
 * block copy, with a progress bar. A clone that fails removes the half-made qube.
 */
export function qvmClone(ctx: ToolContext): Command {
  return new Command('qvm-clone')
    .description('Clone a qube: its properties, features, tags and volumes')
    .argument('<source>', 'the qube to clone')
    .argument('<name>', 'the name of the new qube')
    .option('-P, --pool <pool>', 'the pool for the new volumes (default: where the default pools say)')
    .option('--class <class>', "the class of the new qube (default: the source's)")
    .action(async (source: string, name: string, options: { pool?: string; class?: string }) => {
      const bus = await ctx.bus();
      const [row] = (await bus.request(AdminVmList, {}, { dest: source })).domains;
      const klass = (options.class ?? row!.class) as CreatableClass;
      if (!(CREATABLE_CLASSES as readonly string[]).includes(klass)) throw new UsageError(`a ${klass} cannot be cloned`);
      const { properties } = await bus.request(AdminVmProperty.GetAll, {}, { dest: source });
      const copied: Record<string, PropertyValue> = {};
      for (const [property, entry] of Object.entries(properties)) if (!entry.default && !NOT_CLONED.has(property)) copied[property] = entry.value;
      await bus.request(AdminVmCreate[klass], {
        ...(row!.template === null ? {} : { arg: row!.template }),
        payload: { name, label: row!.label, properties: copied, ...(options.pool === undefined ? {} : { pool: options.pool }) },
      });
      try {
        const { features } = await bus.request(AdminVmFeature.List, {}, { dest: source });
        for (const [feature, value] of Object.entries(features)) await bus.request(AdminVmFeature.Set, { arg: feature, payload: { value } }, { dest: name });
        for (const tag of (await bus.request(AdminVmTag.List, {}, { dest: source })).tags) await bus.request(AdminVmTag.Set, { arg: tag }, { dest: name });
        const targets = new Set(await bus.request(AdminVmVolumeList, {}, { dest: name }));
        for (const volume of await bus.request(AdminVmVolumeList, {}, { dest: source })) {
          if (!targets.has(volume)) continue;
          const info = await bus.request(AdminVmVolumeInfo, { arg: volume }, { dest: source });
          if (!info.save_on_stop) continue; // a snapshot or a volatile volume: nothing of its own to copy
          await cloneVolume(ctx, source, name, volume);
        }
      } catch (err) {
        await bus.request(AdminVmRemove, {}, { dest: name }).catch(() => undefined);
        throw err;
      }
    });
}

async function cloneVolume(ctx: ToolContext, source: string, name: string, volume: string): Promise<void> {
  const bus = await ctx.bus();
  const bar = progressBar(ctx.stderr, `${name}:${volume}`);
  const events = await bus.events(VolumeProgress, { vm: name, qualifier: volume });
  const watching = (async () => {
    for await (const { message } of events) bar.update(message.done, message.total);
  })();
  // Ctrl-C stops the copy where it is (the storage service removes what it wrote) before the
  // clone is undone.
  const cancel = (): void => void bus.request(AdminVmVolumeCloneCancel, { arg: volume }, { dest: name }).catch(() => undefined);
  ctx.signals.once('SIGINT', cancel);
  try {
    const { token } = await bus.request(AdminVmVolumeCloneFrom, { arg: volume }, { dest: source });
    await bus.request(AdminVmVolumeCloneTo, { arg: volume, payload: { token } }, { dest: name, timeoutMs: 6 * 3600_000 });
  } finally {
    ctx.signals.removeListener('SIGINT', cancel);
    await events.stop();
    await watching;
    bar.end();
  }
}
