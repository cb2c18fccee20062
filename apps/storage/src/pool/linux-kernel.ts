import { stat } from 'node:fs/promises';
import path from 'node:path';
import { QubesError } from '@qubes-bus/contracts';
import type { CopyResult } from './files';
import type { ImportOptions, Pool, PoolUsage, Revision, Volume, VolumeConfig } from './types';

/**
 * `linux-kernel` (Qubes' pool of dom0-provided kernels): read-only, one directory per kernel
 * version under dir_path holding vmlinuz, initramfs and modules.img. A VM's kernel volume is
 * the modules image of the version its `kernel` property names (the vid); the domain boots the
 * vmlinuz beside it.
 */
export class LinuxKernelPool implements Pool {
  readonly driver = 'linux-kernel' as const;
  readonly revisionsToKeep = 0;
  readonly dirPath: string;

  constructor(
    readonly name: string,
    options: Readonly<Record<string, string>>,
  ) {
    for (const option of Object.keys(options)) {
      if (option !== 'dir_path') throw new QubesError('POOL_INVALID', `pool ${name}: the linux-kernel driver has no option ${JSON.stringify(option)}`, { details: { pool: name, option } });
    }
    const dir = options['dir_path'];
    if (dir === undefined || !path.isAbsolute(dir)) {
      throw new QubesError('POOL_INVALID', `pool ${name}: a linux-kernel pool needs an absolute dir_path`, { details: { pool: name, option: 'dir_path' } });
    }
    this.dirPath = path.resolve(dir);
  }

  get config(): Record<string, string> {
    return { name: this.name, driver: this.driver, dir_path: this.dirPath };
  }

  /** Nothing to prepare: kernels are installed by the system, and a missing one fails its VM's start. */
  async setup(): Promise<void> {}

  async usage(): Promise<PoolUsage> {
    return { size: 0, usage: 0 };
  }

  vidFor(vm: { kernel: string | null }): string {
    return vm.kernel ?? '';
  }

  volume(config: VolumeConfig): Volume {
    return new KernelVolume(this, config);
  }
}

class KernelVolume implements Volume {
  constructor(
    private readonly pool: LinuxKernelPool,
    readonly config: VolumeConfig,
  ) {}

  private get modules(): string {
    const file = path.resolve(this.pool.dirPath, this.config.vid, 'modules.img');
    if (!file.startsWith(`${this.pool.dirPath}${path.sep}`) || this.config.vid.includes('/')) {
      throw new QubesError('BAD_REQUEST', `kernel ${JSON.stringify(this.config.vid)} is not a kernel version`, { details: { field: 'vid' } });
    }
    return file;
  }

  get blockDevice(): { path: string; type: 'file' } {
    return { path: this.modules, type: 'file' };
  }

  async create(): Promise<void> {}
  async remove(): Promise<void> {}

  async verify(): Promise<void> {
    try {
      await stat(path.dirname(this.modules));
    } catch {
      throw new QubesError('VOLUME_DATA_MISSING', `kernel ${this.config.vid} is not installed in ${this.pool.dirPath}`, {
        details: { vid: this.config.vid, file: path.dirname(this.modules) },
      });
    }
  }

  async start(): Promise<void> {
    await this.verify();
  }

  async stop(): Promise<void> {}

  async isDirty(): Promise<boolean> {
    return false;
  }

  async isOutdated(): Promise<boolean> {
    return false;
  }

  async usage(): Promise<number> {
    try {
      return (await stat(this.modules)).size;
    } catch {
      return 0;
    }
  }

  resize(): Promise<void> {
    return Promise.reject(this.readOnly('resized'));
  }

  async revisions(): Promise<Revision[]> {
    return [];
  }

  revert(): Promise<void> {
    return Promise.reject(this.readOnly('reverted'));
  }

  importData(_data: AsyncIterable<Uint8Array>, _options?: ImportOptions): Promise<{ bytes: number }> {
    return Promise.reject(this.readOnly('imported into'));
  }

  importFile(): Promise<{ bytes: number }> {
    return Promise.reject(this.readOnly('imported into'));
  }

  scratchDir(): null {
    return null;
  }

  importVolume(): Promise<CopyResult> {
    return Promise.reject(this.readOnly('cloned into'));
  }

  exportPath(): Promise<string> {
    return Promise.reject(new QubesError('VOLUME_NOT_PERSISTENT', `the kernel volume ${this.config.vid} belongs to dom0: it is not exported`, { details: { vid: this.config.vid } }));
  }

  private readOnly(what: string): QubesError {
    return new QubesError('VOLUME_READ_ONLY', `the kernel volume ${this.config.vid} is dom0's, read-only: it cannot be ${what}`, { details: { vid: this.config.vid } });
  }
}
