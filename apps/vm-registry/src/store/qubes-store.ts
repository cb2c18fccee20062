import { closeSync, constants, fstatSync, linkSync, openSync, promises as fs, renameSync, rmSync, statSync, writeFileSync, type BigIntStats } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { QubesError } from '@qubes-bus/contracts';
import { createFileDurably, fsyncDir, fsyncFd, fsyncFile, lockFile, lockNowSync, mkdirDurably, removeStaleTemps, tempPathFor } from '@qubes-bus/durable';
import type { Logger } from '@qubes-bus/log';
import { initialQubesApp, loadQubesXml, serializeQubesXml, type LoadResult, type QubesApp } from '@qubes-bus/qubes-model';

export const STORE_FILE = 'qubes.xml';
/** The file as it was before the last save: the last good copy. */
export const BACKUP_FILE = 'qubes.xml.bak';
/** An R3 QubesVmCollection, kept as it was when it was converted. */
export const R3_ORIGINAL_FILE = 'qubes.xml.r3';
/** Who holds the store, for the message of a process that finds it locked. */
const HOLDER_FILE = 'qubes.xml.holder';

export interface OpenOptions {
  dataDir: string;
  log: Logger;
  /**
   * `wait`: a registry waits for whoever holds qubes.xml (an offline tool finishing). `fail`:
   * offline tools refuse with STORE_LOCKED while a registry holds it.
   */
  whenLocked: 'wait' | 'fail';
  /** Whether to create a new store (dom0 only) where there is none: the registry does, tools do not. */
  create: boolean;
  /** Revision epoch of this load (tests pin it). */
  epoch?: string;
  /**
   * One save per change instead of group commit: only the benchmark's baseline wants this.
   */
  saveEachChange?: boolean;
  /**
   * Checks the text is well-formed XML (throws STORE_MALFORMED), run while the text is parsed:
   * the registry gives one that runs in a worker thread. Default: in line, before parsing.
   */
  validator?: (text: string, path: string) => Promise<void>;
}

/** What tells the file we wrote from one changed since: an edit in place moves ctime at least. */
interface Identity {
  dev: bigint;
  ino: bigint;
  size: bigint;
  mtimeNs: bigint;
  ctimeNs: bigint;
}

/** The open, locked qubes.xml: closing it releases the lock. */
interface HeldFile {
  readonly fd: number;
  close(): void | Promise<void>;
}

interface Waiter {
  resolve: () => void;
  reject: (err: unknown) => void;
  undo: () => void;
}

/**
 * qubes.xml on disk, held by one process at a time (DESIGN.md §4, qubes/app.py save/load):
 * - the holder keeps an exclusive flock on the file for as long as it runs; a saved file is
 *   written beside it, locked, fsynced, renamed into place and the directory fsynced, and only
 *   then is the old file's lock released;
 * - a process waiting for the lock checks, once it has it, that the file it locked is still the
 *   one at the path (it may have been replaced while it waited) and tries again if not;
 * - an edit from outside since the last load or save is detected and never overwritten;
 * - group commit: changes made while a save runs go into the next one, and each caller is
 *   answered once a save holding its change is on disk; a failed save undoes every change it
 *   was to hold, so memory never says what the disk does not.
 */
export class QubesStore {
  readonly path: string;
  private identity: Identity;
  private readonly waiting: Waiter[] = [];
  private saving = false;
  private poisoned: QubesError | null = null;
  private closed = false;

  private constructor(
    readonly app: QubesApp,
    readonly dataDir: string,
    private held: HeldFile,
    identity: Identity,
    private readonly log: Logger,
    private readonly batchLimit: number,
  ) {
    this.path = path.join(dataDir, STORE_FILE);
    this.identity = identity;
  }

  static async open(options: OpenOptions): Promise<QubesStore> {
    const { dataDir, log } = options;
    const file = path.join(dataDir, STORE_FILE);
    await checkPresent(dataDir, options.create);
    // Others may pass through (not list): QEMU under libvirt's qemu:///system runs as its own
    // user (libvirt-qemu), who opens the VMs' images by path (libvirt lends it each image).
    await mkdirDurably(dataDir, { mode: 0o2771 });
    if (options.create && !(await present(file)) && (await createFileDurably(file, serializeQubesXml(initialQubesApp(dataDir, options.epoch, { reflinks: await reflinksIn(dataDir) })), { mode: 0o660 }))) {
      log.info({ path: file }, 'created a new qubes.xml holding dom0');
    }
    const handle = await lockCurrent(file, options.whenLocked, log);
    try {
      await removeStaleTemps(file); // only the holder may: they could be a live save's
      const text = await handle.readFile('utf8');
      const { app, convertedFromR3 } = await parseAlongsideValidation(text, file, options);
      const identity = toIdentity(await handle.stat({ bigint: true }));
      await fs.writeFile(path.join(dataDir, HOLDER_FILE), `${process.pid}\n`);
      const store = new QubesStore(app, dataDir, { fd: handle.fd, close: () => handle.close() }, identity, log, options.saveEachChange ? 1 : Infinity);
      if (convertedFromR3) {
        await keepOriginal(file, path.join(dataDir, R3_ORIGINAL_FILE));
        await store.save();
        log.warn({ path: file, original: path.join(dataDir, R3_ORIGINAL_FILE) }, 'converted a Qubes 3 qubes.xml to the R4 format');
      }
      return store;
    } catch (err) {
      await handle.close();
      throw err;
    }
  }

  /**
   * Resolves once the changes made so far are on disk. `undo` takes this caller's change back
   * if the save fails (and every later change with it, newest first).
   */
  commit(undo: () => void): Promise<void> {
    if (this.closed) return Promise.reject(new QubesError('INTERNAL', 'the store is closed'));
    return new Promise((resolve, reject) => {
      this.waiting.push({ resolve, reject, undo });
      if (!this.saving) void this.drain();
    });
  }

  /** Resolves once every change made so far is on disk (at once if none is pending). */
  settled(): Promise<void> {
    return this.saving || this.waiting.length > 0 ? this.commit(() => undefined) : Promise.resolve();
  }

  private async drain(): Promise<void> {
    this.saving = true;
    try {
      while (this.waiting.length > 0) {
        const batch = this.waiting.splice(0, this.batchLimit);
        try {
          await this.save();
          for (const w of batch) w.resolve();
        } catch (err) {
          // Take back this batch and everything made on top of it since, newest first; unless
          // the file holds it already (written, not known durable): then memory stays as the file.
          const written = err instanceof QubesError && err.details?.['outcome'] === 'unknown';
          const failed = written ? batch : [...batch, ...this.waiting.splice(0)];
          if (!written) for (const w of [...failed].reverse()) w.undo();
          for (const w of failed) w.reject(err);
        }
      }
    } finally {
      this.saving = false;
    }
  }

  /**
   * Writes the store now (the whole of it, as Qubes does). The quick steps are synchronous
   * system calls: an await per step would cost a turn of an event loop busy with requests;
   * only the two fsyncs, which take milliseconds, wait off the loop.
   */
  private async save(): Promise<void> {
    if (this.poisoned !== null) throw this.poisoned;
    this.checkUnchanged();
    const text = serializeQubesXml(this.app);
    const temp = tempPathFor(this.path);
    const backupTemp = `${this.path}.bak-tmp`;
    let fd: number | undefined;
    try {
      fd = openSync(temp, constants.O_RDWR | constants.O_CREAT | constants.O_EXCL, 0o660);
      lockNowSync(fd); // ours alone: nobody else knows the name yet
      writeFileSync(fd, text, 'utf8');
      await fsyncFd(fd);
      // Again, after the wait: from here to the rename nothing yields to anyone.
      this.checkUnchanged();
      // The file now in place is good (we loaded or wrote it, and it is unchanged): keep it.
      rmSync(backupTemp, { force: true });
      linkSync(this.path, backupTemp);
      renameSync(backupTemp, path.join(this.dataDir, BACKUP_FILE));
      renameSync(temp, this.path);
    } catch (err) {
      if (fd !== undefined) closeSync(fd);
      rmSync(temp, { force: true });
      if (err instanceof QubesError) throw err;
      throw new QubesError('STORE_WRITE_FAILED', `could not write ${this.path}: ${(err as Error).message}; nothing was changed`, { cause: err });
    }
    const old = this.held;
    this.held = { fd, close: () => closeSync(fd) };
    this.identity = toIdentity(fstatSync(fd, { bigint: true }));
    await old.close(); // releases the lock on the file just replaced
    // The new file is the store now, whatever follows: memory must keep saying what it says.
    try {
      await fsyncDir(this.dataDir);
    } catch (err) {
      // Its name may not survive a crash: nobody may be told a later change is safe either.
      this.poisoned = new QubesError('STORE_WRITE_FAILED', `the data directory ${this.dataDir} could not be synced (${(err as Error).message}); restart the registry`, {
        cause: err,
      });
      this.log.error({ err, path: this.path }, 'fsync of the data directory failed; refusing further saves');
      throw new QubesError('STORE_WRITE_FAILED', `${this.path} was written, but it may not survive a crash (${(err as Error).message})`, { details: { outcome: 'unknown' } });
    }
  }

  private checkUnchanged(): void {
    let now: Identity | null = null;
    try {
      now = toIdentity(statSync(this.path, { bigint: true }));
    } catch {
      now = null;
    }
    const was = this.identity;
    const same =
      now !== null && now.dev === was.dev && now.ino === was.ino && now.size === was.size && now.mtimeNs === was.mtimeNs && now.ctimeNs === was.ctimeNs;
    if (!same) {
      this.poisoned = new QubesError(
        'STORE_MODIFIED_EXTERNALLY',
        `${this.path} was changed by something other than the registry; it is not overwritten, and no change is saved until the registry restarts and loads it`,
        { details: { path: this.path } },
      );
      this.log.error({ path: this.path }, 'qubes.xml changed behind our back; refusing to save');
      throw this.poisoned;
    }
  }

  /** Waits for saves in progress, then lets go of qubes.xml. */
  async close(): Promise<void> {
    this.closed = true;
    while (this.saving || this.waiting.length > 0) await new Promise((r) => setTimeout(r, 5));
    await fs.rm(path.join(this.dataDir, HOLDER_FILE), { force: true });
    await this.held.close();
  }
}

/** Parses while `validator` checks the same text; a validation failure wins (it says where). */
async function parseAlongsideValidation(text: string, file: string, options: OpenOptions): Promise<LoadResult> {
  if (options.validator === undefined) return loadQubesXml(text, file, { epoch: options.epoch });
  const validation = options.validator(text, file);
  validation.catch(() => undefined); // awaited below; not unhandled meanwhile
  let loaded: LoadResult | undefined;
  let parseError: unknown;
  try {
    loaded = loadQubesXml(text, file, { epoch: options.epoch, validated: true });
  } catch (err) {
    parseError = err;
  }
  await validation;
  if (loaded === undefined) throw parseError;
  return loaded;
}

/**
 * A store is created only where there was none at all: a qubes.xml missing beside its backup
 * (or its R3 original) is an accident to repair, not a new installation.
 */
async function checkPresent(dataDir: string, create: boolean): Promise<void> {
  const exists = async (name: string): Promise<boolean> => fs.access(path.join(dataDir, name)).then(() => true, () => false);
  if (await exists(STORE_FILE)) return;
  const leftovers = (await Promise.all([BACKUP_FILE, R3_ORIGINAL_FILE].map(async (n) => ((await exists(n)) ? n : null)))).filter((n) => n !== null);
  if (leftovers.length > 0) {
    throw new QubesError(
      'STORE_MISSING',
      `${path.join(dataDir, STORE_FILE)} is missing, but ${leftovers.join(' and ')} ${leftovers.length > 1 ? 'are' : 'is'} there: restore it (cp ${path.join(dataDir, leftovers[0]!)} ${path.join(dataDir, STORE_FILE)}), or move it away to start afresh`,
      { details: { dataDir, leftovers } },
    );
  }
  if (!create) {
    throw new QubesError('STORE_MISSING', `there is no qubes.xml in ${dataDir}: check QUBES_DATA_DIR, or start the vm-registry once to create one`, {
      details: { dataDir },
    });
  }
}

/** Copies the R3 original beside the store, durably, never over an earlier copy. */
async function keepOriginal(file: string, copy: string): Promise<void> {
  try {
    await fs.copyFile(file, copy, constants.COPYFILE_EXCL);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err; // kept by an earlier, interrupted start
  }
  await fsyncFile(copy);
  await fsyncDir(path.dirname(copy));
}

function toIdentity(stat: BigIntStats): Identity {
  return { dev: stat.dev, ino: stat.ino, size: stat.size, mtimeNs: stat.mtimeNs, ctimeNs: stat.ctimeNs };
}

/**
 * Opens qubes.xml and takes its lock, on the file at the path once it has it (save replaces the
 * file while a waiter waits: see lockFile).
 */
function lockCurrent(file: string, whenLocked: 'wait' | 'fail', log: Logger): Promise<FileHandle> {
  return lockFile(file, {
    onBusy: async () => {
      const holder = await readHolder(path.dirname(file));
      if (whenLocked === 'fail') {
        throw new QubesError(
          'STORE_LOCKED',
          `${file} is held by a running vm-registry${holder === null ? '' : ` (pid ${holder})`}: use the tools without --offline, or stop it first`,
          { details: { path: file, pid: holder } },
        );
      }
      log.info({ path: file, holder }, 'waiting for the process that holds qubes.xml');
    },
    onReplaced: (attempt) => log.debug({ attempt }, 'qubes.xml was replaced while we waited for its lock; trying the new one'),
  });
}

async function readHolder(dataDir: string): Promise<number | null> {
  try {
    const pid = Number((await fs.readFile(path.join(dataDir, HOLDER_FILE), 'utf8')).trim());
    return Number.isInteger(pid) && pid > 0 ? pid : null;
  } catch {
    return null;
  }
}

async function present(file: string): Promise<boolean> {
  try {
    await fs.access(file);
    return true;
  } catch {
    return false;
  }
}

/**
 * Whether the data dir's filesystem shares extents (FICLONE), for the default pool of a new
 * store: without, its file-reflink pool is set up with setup_check=no (as Qubes' installer picks
 * the pool for the filesystem it finds). The storage service owns the pools; this is only the
 * first choice, made once.
 */
async function reflinksIn(dir: string): Promise<boolean> {
  const base = path.join(dir, `.reflink-check-${process.pid}`);
  try {
    await fs.writeFile(`${base}.a`, 'reflink check');
    await fs.copyFile(`${base}.a`, `${base}.b`, constants.COPYFILE_FICLONE_FORCE);
    return true;
  } catch {
    return false;
  } finally {
    await fs.rm(`${base}.a`, { force: true });
    await fs.rm(`${base}.b`, { force: true });
  }
}
