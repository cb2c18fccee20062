import { QubesError, type StorageAttrs } from '@qubes-bus/contracts';
import { FilePool } from './file-dm';
import { FileReflinkPool } from './file-reflink';
import { LinuxKernelPool } from './linux-kernel';
import { LvmThinPool } from './lvm-thin';
import { PoolDriverName, type Pool } from './types';

interface Driver {
  /** The options `admin.pool.Add` takes (admin.pool.ListDrivers). */
  options: readonly string[];
  make(name: string, options: Readonly<Record<string, string>>): Pool;
}

/** The pool drivers this storage service runs. */
export const DRIVERS: Readonly<Record<string, Driver>> = {
  [PoolDriverName.FileReflink]: {
    options: ['dir_path', 'revisions_to_keep', 'setup_check'],
    make: (name, options) => new FileReflinkPool(name, options),
  },
  [PoolDriverName.File]: {
    options: ['dir_path', 'revisions_to_keep'],
    make: (name, options) => new FilePool(name, options),
  },
  [PoolDriverName.LvmThin]: {
    options: ['volume_group', 'thin_pool', 'revisions_to_keep'],
    make: (name, options) => new LvmThinPool(name, options),
  },
  [PoolDriverName.LinuxKernel]: {
    options: ['dir_path'],
    make: (name, options) => new LinuxKernelPool(name, options),
  },
};

/** The pool a `<pool>` element describes (name, driver, and the driver's options). */
export function poolFromAttrs(attrs: StorageAttrs): Pool {
  const { name, driver, ...options } = attrs;
  if (name === undefined || name === '') throw new QubesError('POOL_INVALID', 'a pool without a name', { details: { option: 'name' } });
  const found = driver === undefined ? undefined : DRIVERS[driver];
  if (found === undefined) {
    throw new QubesError('POOL_DRIVER_UNKNOWN', `pool ${name}: no driver ${JSON.stringify(driver ?? '')} (there are ${Object.keys(DRIVERS).join(', ')})`, {
      details: { pool: name, driver: driver ?? null },
    });
  }
  return found.make(name, options);
}
