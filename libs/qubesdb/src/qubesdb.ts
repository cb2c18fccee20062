import { StorageType } from '@nats-io/jetstream';
import { Kvm, KvWatchInclude, type KV, type KvEntry } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/nats-core';
import { setTimeout as sleep } from 'node:timers/promises';
import { patiently } from '@qubes-bus/bus';
import { decodeToken, QUBESDB_BUCKET, QubesError } from '@qubes-bus/contracts';
import { checkPath, isDirectory, keyOf, pathOf, sessionKey } from './path';

const utf8 = new TextEncoder();

/** A change seen by a watch: the new value, or null when the key was removed. */
export interface QubesDbChange {
  readonly path: string;
  readonly value: string | null;
}

export interface QubesDbWatch {
  stop(): Promise<void>;
}

/** What the registry records in a VM's session key when the VM starts. */
export interface QubesDbSession {
  readonly uuid: string;
  readonly since: string;
}

/** The bucket, each call retried while nats-server restarts (puts and purges are idempotent). */
type PatientKv = Pick<KV, 'get' | 'put' | 'purge' | 'keys' | 'watch'>;

function patient(kv: KV): PatientKv {
  return {
    get: (...args) => patiently(() => kv.get(...args)),
    put: (...args) => patiently(() => kv.put(...args)),
    purge: (...args) => patiently(() => kv.purge(...args)),
    keys: (...args) => patiently(() => kv.keys(...args)),
    watch: (...args) => patiently(() => kv.watch(...args)),
  };
}

function isLive(entry: KvEntry | null): entry is KvEntry {
  return entry !== null && entry.operation === 'PUT';
}

function checkValue(path: string, value: string): Uint8Array {
  const bytes = utf8.encode(value);
  if (bytes.length > QUBESDB_BUCKET.maxValueBytes) {
    throw new QubesError('BAD_REQUEST', `the value for ${path} is ${bytes.length} bytes; QubesDB holds at most ${QUBESDB_BUCKET.maxValueBytes}`, {
      details: { field: 'value', size: bytes.length, limit: QUBESDB_BUCKET.maxValueBytes },
    });
  }
  return bytes;
}

/**
 * QubesDB on a JetStream KV bucket (DESIGN.md §5): the per-VM configuration the VM's agent and
 * dom0's services read and write. A VM's database exists while it runs: the registry opens
 * it (`connect`) when the VM starts and removes it (`disconnect`) when the VM stops, and any
 * other use of a halted VM's database fails with QUBESDB_DISCONNECTED, as Qubes'
 * `DisconnectedError` does, instead of quietly answering nothing.
 */
export class QubesDb {
  private constructor(private readonly kv: PatientKv) {}

  /** Opens the bucket, creating it on first use (idempotent, safe from every service). */
  static async open(nc: NatsConnection): Promise<QubesDb> {
    const kv = await patiently(() =>
      new Kvm(nc).create(QUBESDB_BUCKET.name, {
        history: 1,
        storage: StorageType.File,
        maxValueSize: 4096 + 512, // the session record and headroom over QDB_MAX_DATA
      }),
    );
    return new QubesDb(patient(kv));
  }

  /** One VM's database. */
  vm(name: string): VmQubesDb {
    return new VmQubesDb(this.kv, name);
  }

  /**
   * Starts a VM's session: whatever a previous run left is removed, `entries` are written,
   * and only then is the session key set, so that nobody sees a half-written database.
   */
  async connect(vm: string, session: QubesDbSession, entries: ReadonlyMap<string, string>): Promise<void> {
    const checked = [...entries].map(([path, value]) => [keyOf(vm, checkPath(path)), checkValue(path, value)] as const);
    await this.purge(vm);
    await Promise.all(checked.map(([key, bytes]) => this.kv.put(key, bytes)));
    await this.kv.put(sessionKey(vm), JSON.stringify(session));
  }

  /** Ends a VM's session: the session key goes first (readers see the disconnection), then every key. */
  async disconnect(vm: string): Promise<void> {
    await this.kv.purge(sessionKey(vm));
    await this.purge(vm);
  }

  async session(vm: string): Promise<QubesDbSession | null> {
    const entry = await this.kv.get(sessionKey(vm));
    return isLive(entry) ? entry.json<QubesDbSession>() : null;
  }

  /** The VMs whose database is open. */
  async connectedVms(): Promise<string[]> {
    const keys = await this.kv.keys('*');
    const vms: string[] = [];
    for await (const key of keys) vms.push(decodeToken(key));
    return vms;
  }

  private async purge(vm: string): Promise<void> {
    const keys = await this.kv.keys(keyOf(vm, '/'));
    const all: string[] = [];
    for await (const key of keys) all.push(key);
    await Promise.all(all.map((key) => this.kv.purge(key)));
  }
}

/** A VM's QubesDB: QubesDB's read, multiread, list, write, rm and watch. */
export class VmQubesDb {
  constructor(
    private readonly kv: PatientKv,
    readonly vm: string,
  ) {}

  private async connected(): Promise<void> {
    if (!isLive(await this.kv.get(sessionKey(this.vm)))) {
      throw new QubesError('QUBESDB_DISCONNECTED', `${this.vm} is not running: its QubesDB exists only while it runs`, { details: { vm: this.vm } });
    }
  }

  /** The value at `path`, or null if there is none. */
  async read(path: string): Promise<string | null> {
    const key = keyOf(this.vm, checkPath(path));
    const [entry] = await Promise.all([this.kv.get(key), this.connected()]);
    return isLive(entry) ? entry.string() : null;
  }

  /** The paths under a directory (`/qubes-service/`). */
  async list(directory: string): Promise<string[]> {
    await this.connected();
    const keys = await this.kv.keys(keyOf(this.vm, checkDirectory(directory)));
    const paths: string[] = [];
    for await (const key of keys) paths.push(pathOf(key));
    return paths.sort();
  }

  /** Every path under a directory with its value. */
  async multiread(directory: string): Promise<Map<string, string>> {
    const paths = await this.list(directory);
    const values = await Promise.all(paths.map(async (path) => [path, await this.kv.get(keyOf(this.vm, path))] as const));
    return new Map(values.filter(([, e]) => isLive(e)).map(([path, e]) => [path, e!.string()]));
  }

  async write(path: string, value: string): Promise<void> {
    const bytes = checkValue(path, value);
    const key = keyOf(this.vm, checkPath(path));
    if (isDirectory(path)) throw new QubesError('BAD_REQUEST', `${path} is a directory: a value needs a key`, { details: { field: 'path' } });
    await this.connected();
    await this.kv.put(key, bytes);
  }

  /** Removes a key, or with a trailing `/` everything under a directory. */
  async rm(path: string): Promise<void> {
    checkPath(path);
    await this.connected();
    if (!isDirectory(path)) {
      await this.kv.purge(keyOf(this.vm, path));
      return;
    }
    for (const each of await this.list(path)) await this.kv.purge(keyOf(this.vm, each));
  }

  /**
   * Calls `onChange` for every write and removal at `path` (or under it, for a directory) from
   * now on, whether or not the VM runs yet. The watch outlives a restart of nats-server: it
   * resumes after the last change it delivered.
   */
  watch(path: string, onChange: (change: QubesDbChange) => void): QubesDbWatch {
    const key = keyOf(this.vm, checkPath(path));
    let stopped = false;
    let current: { stop(): void } | undefined;
    let last: number | undefined;
    const ready = (async () => {
      while (!stopped) {
        try {
          const iterator = await this.kv.watch({ key, ...(last === undefined ? { include: KvWatchInclude.UpdatesOnly } : { resumeFromRevision: last + 1 }) });
          current = iterator;
          if (stopped) iterator.stop();
          for await (const entry of iterator) {
            last = entry.revision;
            onChange({ path: pathOf(entry.key), value: isLive(entry) ? entry.string() : null });
          }
        } catch {
          // the server is away, or its consumer was lost: watch again from the last change
        }
        if (!stopped) await sleep(250);
      }
    })();
    return {
      async stop() {
        stopped = true;
        current?.stop();
        await ready;
      },
    };
  }
}

function checkDirectory(path: string): string {
  checkPath(path);
  if (!isDirectory(path)) throw new QubesError('BAD_REQUEST', `${path} is not a directory (it ends with /)`, { details: { field: 'path' } });
  return path;
}
