import { QubesError } from '@qubes-bus/contracts';
import { ExecRunner, type CommandRunner } from './command-runner';
import { DeviceMapper } from './device-mapper';
import { checkOptions, DirPool, poolInvalid } from './dir-pool';
import { FileVolume } from './file-dm-volume';
import { PoolDriverName, type Pool, type Volume, type VolumeConfig, type VolumeContext } from './types';

/**
 * `file` (the seed era's storage, kept in Qubes R4 as the `file` driver): sparse image files, with
 * device-mapper snapshots over loop devices for the copy-on-write layers. Files, as Qubes names
 * them under dir_path:
 *
 *   <vid>.img          the volume's data (a snapshot volume reads its source's)
 *   <vid>-cow.img      the copy-on-write store of its snapshot layer
 *   <vid>-cow.img.old  the store of the run before: the one revision this driver keeps
 *
 * The layers, with device names as Qubes' block-snapshot script makes them (`<img>` is the
 * image's `stat -c %D:%i`, so every VM of a template finds the same device):
 *
 * - a persistent volume (a template's root, a private): `origin-<img>` (snapshot-origin of
 *   <vid>.img) is the disk; `snapshot-<img>-<cow>` beside it keeps in <vid>-cow.img each block
 *   as it was before the run overwrote it. At stop the store becomes the revision and a new one
 *   is made: the commit. A revert merges the revision back (snapshot-merge).
 * - a template-based root of a PV or PVH VM: `snapshot-<root>-<root-cow>`, the template's root as
 *   last committed, read-only and shared by every VM of the template; the VM stacks its volatile
 *   volume over it itself (Qubes' initramfs).
 * - a template-based root of an HVM (no Qubes initramfs): one writable layer in dom0,
 *   `snapshot-<root>-<volatile>`, the VM's volatile image (reset at each start) as its store;
 *   the volatile volume gives the domain no disk of its own then.
 * - any other snapshot volume (a disposable VM's private): the source's committed snapshot,
 *   then a writable snapshot of it with <vid>-cow.img as store, new at each start.
 * - a volatile volume: <vid>.img, new and empty at each start.
 *
 * Every device-mapper and loop command goes through the command runner.
 */
export class FilePool extends DirPool implements Pool {
  readonly driver = PoolDriverName.File;
  readonly revisionsToKeep: number;
  readonly dm: DeviceMapper;

  constructor(name: string, options: Readonly<Record<string, string>>, runner: CommandRunner = new ExecRunner(), mapperDir = '/dev/mapper') {
    checkOptions(name, PoolDriverName.File, options, ['dir_path', 'revisions_to_keep']);
    super(name, PoolDriverName.File, options);
    const keep = options['revisions_to_keep'] ?? '1';
    if (keep !== '0' && keep !== '1') throw poolInvalid(name, `the file driver keeps one revision at most: revisions_to_keep is 0 or 1, not ${JSON.stringify(keep)}`, 'revisions_to_keep');
    this.revisionsToKeep = Number(keep);
    this.dm = new DeviceMapper(runner, mapperDir);
  }

  get config(): Record<string, string> {
    return { name: this.name, driver: this.driver, dir_path: this.dirPath, revisions_to_keep: String(this.revisionsToKeep) };
  }

  private devicesFree: Promise<unknown> = Promise.resolve();

  /**
   * Runs `work` on the pool's loop and device-mapper devices once the work before it is done: a
   * template and its VMs share devices, so their starts and stops (each under its own VM's lock)
   * must not interleave.
   */
  withDevices<T>(work: () => Promise<T>): Promise<T> {
    const run = this.devicesFree.then(work);
    this.devicesFree = run.catch(() => undefined);
    return run;
  }

  volume(config: VolumeConfig, source?: Volume, vm?: VolumeContext): Volume {
    if (config.snap_on_start && config.save_on_stop) {
      throw poolInvalid(this.name, `${config.vid}: a volume both snap_on_start and save_on_stop is not supported by the file driver`, 'driver');
    }
    if (config.snap_on_start && !(source instanceof FileVolume)) {
      throw new QubesError('VOLUME_DATA_MISSING', `volume ${config.vid} is a snapshot of ${config.source ?? 'nothing'}, which is not a file volume`, {
        details: { vid: config.vid, source: config.source },
      });
    }
    return new FileVolume(this, config, config.snap_on_start ? (source as FileVolume) : null, layoutOf(this, config, vm));
  }
}

export type Layout =
  | { kind: 'origin' }
  | { kind: 'volatile'; layerOfRoot: boolean }
  | { kind: 'shared-snapshot' }
  | { kind: 'hvm-root'; volatile: string }
  | { kind: 'own-snapshot' };

/** How a volume is layered: by its flags, and for a template-based root by the VM's virt_mode. */
function layoutOf(pool: FilePool, config: VolumeConfig, vm: VolumeContext | undefined): Layout {
  if (config.save_on_stop) return { kind: 'origin' };
  const hvm = vm?.virtMode === 'hvm';
  const sibling = (name: string): VolumeConfig | undefined => vm?.volumes.find((v) => v.name === name && v.pool === pool.name);
  if (!config.snap_on_start) return { kind: 'volatile', layerOfRoot: hvm && config.name === 'volatile' && sibling('root')?.snap_on_start === true };
  if (config.name !== 'root') return { kind: 'own-snapshot' };
  const volatile = sibling('volatile');
  if (hvm && volatile !== undefined && !volatile.snap_on_start && !volatile.save_on_stop) return { kind: 'hvm-root', volatile: pool.imagePath(volatile.vid, '.img') };
  return { kind: 'shared-snapshot' };
}
