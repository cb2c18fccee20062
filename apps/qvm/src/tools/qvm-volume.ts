import { createReadStream, statSync } from 'node:fs';
import { Command } from 'commander';
import { copyFileInto, sendBytes } from '@qubes-bus/bus';
import {
  AdminVmList,
  AdminVmVolumeClear,
  AdminVmVolumeImport,
  AdminVmVolumeImportWithSize,
  AdminVmVolumeInfo,
  AdminVmVolumeList,
  AdminVmVolumeListSnapshots,
  AdminVmVolumeResize,
  AdminVmVolumeRevert,
  AdminVmVolumeSetRevisionsToKeep,
  AdminVmVolumeSetRw,
} from '@qubes-bus/contracts';
import { UsageError } from '../errors';
import { progressBar } from '../progress';
import { parseSize } from '../sizes';
import { alignColumns, formatTable } from '../table';
import type { ToolContext } from '../tool';

/** `VM:VOLUME`, as qvm-volume names a volume. */
function parseTarget(untrusted: string): { vm: string; volume: string } {
  const colon = untrusted.lastIndexOf(':');
  if (colon <= 0 || colon === untrusted.length - 1) throw new UsageError(`name a volume as VM:VOLUME, like work:private, not ${JSON.stringify(untrusted)}`);
  return { vm: untrusted.slice(0, colon), volume: untrusted.slice(colon + 1) };
}

function parseBool(untrusted: string): boolean {
  if (/^(true|yes|on|1)$/i.test(untrusted)) return true;
  if (/^(false|no|off|0)$/i.test(untrusted)) return false;
  throw new UsageError(`not a boolean: ${JSON.stringify(untrusted)} (say True or False)`);
}

/** qvm-volume: list and manage the volumes of qubes (qubesadmin/tools/qvm_volume.py). */
export function qvmVolume(ctx: ToolContext): Command {
  const tool = new Command('qvm-volume').description('Manage the volumes of qubes');

  tool
    .command('list', { isDefault: true })
    .aliases(['ls', 'l'])
    .description('list the volumes of the qubes named (default: all)')
    .argument('[vmname...]', 'the qubes')
    .action(async (vms: string[]) => {
      const api = await ctx.api();
      const names = vms.length > 0 ? vms : (await api.request(AdminVmList, {})).domains.map((d) => d.name);
      const rows: (string | null)[][] = [];
      for (const vm of names) {
        for (const volume of await api.request(AdminVmVolumeList, {}, { dest: vm })) {
          const [info, revisions] = await Promise.all([
            api.request(AdminVmVolumeInfo, { arg: volume }, { dest: vm }),
            api.request(AdminVmVolumeListSnapshots, { arg: volume }, { dest: vm }),
          ]);
          rows.push([`${info.pool}:${info.vid}`, vm, volume, revisions.length > 0 ? 'Yes' : 'No']);
        }
      }
      ctx.stdout.write(formatTable(['POOL:VOLUME', 'VMNAME', 'VOLUME_NAME', 'REVERT_POSSIBLE'], rows));
    });

  tool
    .command('info')
    .alias('i')
    .description('show a volume (or one of its properties)')
    .argument('<vm:volume>', 'the volume')
    .argument('[property]', 'only this property')
    .action(async (target: string, property: string | undefined) => {
      const { vm, volume } = parseTarget(target);
      const api = await ctx.api();
      const info = await api.request(AdminVmVolumeInfo, { arg: volume }, { dest: vm });
      const revisions = await api.request(AdminVmVolumeListSnapshots, { arg: volume }, { dest: vm });
      const shown: Record<string, string> = {};
      for (const [key, value] of Object.entries(info)) shown[key] = typeof value === 'boolean' ? (value ? 'True' : 'False') : String(value ?? '');
      shown['revisions'] = revisions.join(' ');
      if (property !== undefined) {
        const value = shown[property];
        if (value === undefined) throw new UsageError(`a volume has no property ${property}; it has ${Object.keys(shown).sort().join(', ')}`);
        ctx.stdout.write(`${value}\n`);
        return;
      }
      ctx.stdout.write(alignColumns(Object.keys(shown).sort().map((key) => [key, shown[key]!])));
    });

  tool
    .command('config')
    .aliases(['c', 'set', 's'])
    .description('set a property of a volume: revisions_to_keep, rw')
    .argument('<vm:volume>', 'the volume')
    .argument('<property>', 'revisions_to_keep or rw')
    .argument('<value>', 'its new value')
    .action(async (target: string, property: string, value: string) => {
      const { vm, volume } = parseTarget(target);
      const api = await ctx.api();
      if (property === 'revisions_to_keep') {
        if (!/^\d+$/.test(value)) throw new UsageError(`revisions_to_keep is a count, not ${JSON.stringify(value)}`);
        await api.request(AdminVmVolumeSetRevisionsToKeep, { arg: volume, payload: { value: Number(value) } }, { dest: vm });
      } else if (property === 'rw') {
        await api.request(AdminVmVolumeSetRw, { arg: volume, payload: { value: parseBool(value) } }, { dest: vm });
      } else {
        throw new UsageError(`cannot set ${JSON.stringify(property)}: a volume's settable properties are revisions_to_keep and rw`);
      }
    });

  tool
    .command('resize')
    .aliases(['extend', 'r'])
    .description('grow a volume (it never shrinks)')
    .argument('<vm:volume>', 'the volume')
    .argument('<size>', 'its new size: 20G, 512MiB, bytes')
    .action(async (target: string, size: string) => {
      const { vm, volume } = parseTarget(target);
      const api = await ctx.api();
      await api.request(AdminVmVolumeResize, { arg: volume, payload: { size: parseSize(size) } }, { dest: vm, timeoutMs: 120_000 });
    });

  tool
    .command('revert')
    .alias('rv')
    .description('put a volume back to a revision (default: the latest)')
    .argument('<vm:volume>', 'the volume')
    .argument('[revision]', 'the revision (qvm-volume info VM:VOLUME revisions lists them)')
    .action(async (target: string, revision: string | undefined) => {
      const { vm, volume } = parseTarget(target);
      const api = await ctx.api();
      await api.request(AdminVmVolumeRevert, { arg: volume, ...(revision === undefined ? {} : { payload: { revision } }) }, { dest: vm, timeoutMs: 120_000 });
    });

  tool
    .command('clear')
    .description("empty a volume (the old data becomes a revision)")
    .argument('<vm:volume>', 'the volume')
    .action(async (target: string) => {
      const { vm, volume } = parseTarget(target);
      const api = await ctx.api();
      await api.request(AdminVmVolumeClear, { arg: volume }, { dest: vm, timeoutMs: 120_000 });
    });

  tool
    .command('import')
    .description("replace a volume's data with a file's (or standard input's, with -)")
    .argument('<vm:volume>', 'the volume')
    .argument('<path>', 'the file, or - for standard input')
    .option('--size <size>', 'the size of the data (default: the file size; from standard input: at most the volume size)')
    .option('--no-resize', 'keep the volume size: the data may be no larger')
    .action(async (target: string, file: string, options: { size?: string; resize: boolean }) => {
      const { vm, volume } = parseTarget(target);
      const fromStdin = file === '-';
      const size = options.size !== undefined ? parseSize(options.size) : fromStdin ? undefined : statSync(file).size;
      const bus = await ctx.bus();
      const { stream, chunk_bytes, window, socket, token, file: offered } =
        size === undefined || !options.resize
          ? await bus.request(AdminVmVolumeImport, { arg: volume }, { dest: vm })
          : await bus.request(AdminVmVolumeImportWithSize, { arg: volume, payload: { size } }, { dest: vm });
      const source = fromStdin ? ctx.stdin : createReadStream(file, { highWaterMark: chunk_bytes });
      const bar = progressBar(ctx.stderr, `${vm}:${volume}`);
      try {
        await sendBytes(bus.nc, stream, source as AsyncIterable<Uint8Array>, {
          chunkBytes: chunk_bytes,
          window,
          socket,
          token,
          // a file here is copied into the service's file: by the kernel, or a reflink
          ...(fromStdin ? {} : { file: offered, writeFile: copyFileInto(file) }),
          onProgress: (done) => bar.update(done, size ?? done),
        });
      } finally {
        bar.end();
      }
    });

  return tool;
}
