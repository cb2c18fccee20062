/**
 * Storage, measured (issue 5), each against a baseline run in the same script, through the
 * storage service on a real nats-server (beside an in-process registry), on loop-mounted
 * filesystems made here:
 * - clone of a VM's 2 GiB private volume, half of it data: admin.vm.volume.CloneFrom/CloneTo on
 *   xfs (reflink) against the same on ext4 (a sparse block copy), and that copy against
 *   `cp --sparse=always` of the same image;
 * - import of 512 MiB of data into a volume (admin.vm.volume.ImportWithSize, sent by a process of
 *   its own: as a tool on this host does, copying a file into the file the service offers, from
 *   the same filesystem (a reflink) and from another (cp's in-kernel copy), or streaming on the
 *   service's local socket; and as chunks on the bus as one on another host does), and the same
 *   import from a local stream, against `dd bs=1M conv=fsync` of the same file onto the same
 *   filesystem (target: at least 0.8x dd). None keeps a revision of what it replaces (dd does not).
 * Run: npm run bench -- storage
 */
import { execFile, execFileSync } from 'node:child_process';
import { createReadStream, mkdirSync, openSync, closeSync, writeSync, rmSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { connectBus, type Bus } from '@qubes-bus/bus';
import {
  AdminPoolAdd,
  AdminVmCreate,
  AdminVmRemove,
  AdminVmVolumeCloneFrom,
  AdminVmVolumeCloneTo,
  AdminVmVolumeSetRevisionsToKeep,
} from '@qubes-bus/contracts';
import { createLogger } from '@qubes-bus/log';
import { loopFilesystem, startNats } from '@qubes-bus/testing';
import { FileReflinkPool } from '../apps/storage/src/pool/file-reflink';
import { createStorage } from '../apps/storage/src/service';
import { createRegistry } from '../apps/vm-registry/src/service';
import { printTable, ratio } from './stats';

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;
const ROUNDS = 5;
/** Imports are disk-bound and noisy here: more, smaller rounds. */
const IMPORT_ROUNDS = 5;
const IMPORT_BYTES = 512 * MiB;
const log = createLogger('bench', { level: 'error' });
const run = promisify(execFile);

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

/** Fills the first `bytes` of an image with incompressible data (a VM's files), the rest left as holes. */
function fillHalf(file: string, bytes: number): void {
  const block = Buffer.alloc(4 * MiB);
  const fd = openSync(file, 'r+');
  try {
    for (let offset = 0; offset < bytes; offset += block.length) {
      for (let i = 0; i < block.length; i += 4) block.writeUInt32LE((offset + i) * 2654435761 >>> 0, i);
      writeSync(fd, block, 0, block.length, offset);
    }
  } finally {
    closeSync(fd);
  }
  execFileSync('sync');
}

async function timed(work: () => Promise<unknown>): Promise<number> {
  const started = performance.now();
  await work();
  return performance.now() - started;
}

async function main(): Promise<void> {
  const nats = await startNats();
  const xfs = loopFilesystem('xfs', 8192);
  const ext4 = loopFilesystem('ext4', 8192);
  const dataDir = path.join(xfs.path, 'qubes');
  const server = await connectBus({ url: nats.url, name: 'services', log, mode: 'service' });
  const client = await connectBus({ url: nats.url, name: 'bench', log, mode: 'tool' });
  const registry = createRegistry({ bus: server, log, dataDir });
  // the service's run directory, where an import offers its local socket
  const storage = createStorage({ bus: server, log, localDir: path.join(xfs.path, 'run') });
  try {
    await registry.start();
    await storage.start();
    const plainDir = path.join(ext4.path, 'pool');
    mkdirSync(plainDir);
    await client.request(AdminPoolAdd, { arg: 'file-reflink', payload: { name: 'plain', options: { dir_path: plainDir, setup_check: 'no' } } });

    const cloneRows = await benchClone(client, { reflink: xfs.path + '/qubes', plain: plainDir });
    printTable('clone of a 2 GiB private volume, 1 GiB of it data, ms (median of 5)', cloneRows);

    const importRows = await benchImport(client, nats.url, dataDir, xfs.path, ext4.path);
    printTable(`import of ${IMPORT_BYTES / MiB} MiB against dd onto the same xfs (median of ${IMPORT_ROUNDS}; target: import >= 0.8x dd)`, importRows);
  } finally {
    await storage.stop();
    await registry.stop();
    await client.close();
    await server.close();
    await nats.stop();
    xfs.remove();
    ext4.remove();
  }
}

async function benchClone(client: Bus, dirs: { reflink: string; plain: string }): Promise<string[][]> {
  const times: Record<'reflink' | 'plain' | 'cp', number[]> = { reflink: [], plain: [], cp: [] };
  for (const [kind, pool] of [['reflink', 'varlibqubes'], ['plain', 'plain']] as const) {
    await client.request(AdminVmCreate.StandaloneVM, { payload: { name: `src-${kind}`, label: 'red', pool } });
    fillHalf(path.join(dirs[kind], `appvms/src-${kind}/private.img`), GiB);
  }
  // the baseline of the block copy: coreutils' own sparse copy of the same image, with fsync
  const cpBaseline = async (): Promise<void> => {
    const copy = path.join(dirs.plain, 'cp-copy.img');
    execFileSync('sync');
    times.cp.push(await timed(async () => execFileSync('sh', ['-c', `cp --sparse=always --reflink=never "$0" "$1" && sync "$1"`, path.join(dirs.plain, 'appvms/src-plain/private.img'), copy])));
    rmSync(copy);
    execFileSync('sync');
  };
  for (let round = 0; round < ROUNDS; round++) {
    // the baseline first in one round, last in the next: the order favours neither
    if (round % 2 === 0) await cpBaseline();
    for (const [kind, pool] of [['reflink', 'varlibqubes'], ['plain', 'plain']] as const) {
      const dest = `dst-${kind}-${round}`;
      await client.request(AdminVmCreate.StandaloneVM, { payload: { name: dest, label: 'red', pool } });
      execFileSync('sync');
      times[kind].push(
        await timed(async () => {
          const { token } = await client.request(AdminVmVolumeCloneFrom, { arg: 'private' }, { dest: `src-${kind}` });
          await client.request(AdminVmVolumeCloneTo, { arg: 'private', payload: { token } }, { dest, timeoutMs: 600_000 });
        }),
      );
      await client.request(AdminVmRemove, {}, { dest });
      execFileSync('sync');
    }
    if (round % 2 === 1) await cpBaseline();
  }
  const reflink = median(times.reflink);
  const plain = median(times.plain);
  const cp = median(times.cp);
  return [
    ['', 'ms', 'ratio'],
    ['reflink clone (xfs), through the bus', reflink.toFixed(1), `${(plain / reflink).toFixed(0)}x faster than the block copy`],
    ['block copy clone (ext4), through the bus', plain.toFixed(1), ratio(plain, cp) + ' of cp'],
    ['cp --sparse=always + sync (ext4)', cp.toFixed(1), '1.00x'],
  ];
}

async function benchImport(client: Bus, natsUrl: string, dataDir: string, fsPath: string, otherFsPath: string): Promise<string[][]> {
  const source = path.join(fsPath, 'import-source.img');
  execFileSync('truncate', ['-s', `${IMPORT_BYTES}`, source]);
  fillHalf(source, IMPORT_BYTES); // all of it data: nothing to skip
  const elsewhere = path.join(otherFsPath, 'import-source.img'); // the same, on another filesystem
  execFileSync('cp', [source, elsewhere]);
  await client.request(AdminVmCreate.StandaloneVM, { payload: { name: 'importer', label: 'red' } });
  // like dd (and the local import below), the import keeps no copy of what it replaces
  await client.request(AdminVmVolumeSetRevisionsToKeep, { arg: 'private', payload: { value: 0 } }, { dest: 'importer' });
  // the storage library alone, fed from a local stream (what the service does with the chunks)
  const pool = new FileReflinkPool('bench', { dir_path: dataDir });
  const local = pool.volume({ name: 'private', pool: 'bench', vid: 'appvms/local/private', size: IMPORT_BYTES, rw: true, snap_on_start: false, save_on_stop: true, source: null, revisions_to_keep: 0 });
  const ways = {
    reflinked: { via: 'file', from: source },
    copied: { via: 'file', from: elsewhere },
    socket: { via: 'socket', from: source },
    bus: { via: 'bus', from: source },
  } as const;
  const times: Record<keyof typeof ways | 'local' | 'dd', number[]> = { reflinked: [], copied: [], socket: [], bus: [], local: [], dd: [] };
  for (let round = 0; round < IMPORT_ROUNDS; round++) {
    // the sender in a process of its own, as a tool (or the backup service) is (asynchronously:
    // the storage service answering it runs in this process): on this host it copies the file
    // into the one the service offers, or streams on the service's local socket; IMPORT_PATH=bus
    // makes it send as a sender on another host does
    for (const [way, { via, from }] of Object.entries(ways) as Array<[keyof typeof ways, (typeof ways)[keyof typeof ways]]>) {
      execFileSync('sync');
      const env = { ...process.env, IMPORT_PATH: via };
      const sent = await run(process.execPath, ['--import', 'tsx', path.join(__dirname, 'import-sender.ts'), natsUrl, 'importer', 'private', from], { encoding: 'utf8', env });
      times[way].push(Number(sent.stdout.trim()));
    }
    execFileSync('sync');
    times.local.push(await timed(() => local.importData(createReadStream(source, { highWaterMark: MiB }), { size: IMPORT_BYTES, handOver: true })));
    const target = path.join(dataDir, 'dd-target.img');
    execFileSync('sync');
    times.dd.push(await timed(async () => execFileSync('dd', [`if=${source}`, `of=${target}`, 'bs=1M', 'conv=fsync', 'status=none'])));
    rmSync(target);
  }
  await local.remove();
  const rate = (ms: number): string => `${(IMPORT_BYTES / MiB / (ms / 1000)).toFixed(0)} MiB/s`;
  const dd = median(times.dd);
  const row = (label: string, ms: number): string[] => [label, ms.toFixed(0), rate(ms), ratio(dd, ms)];
  return [
    ['', 'ms', 'throughput', 'vs dd'],
    row('ImportWithSize, a file here copied into the offered file, same fs (reflink)', median(times.reflinked)),
    row('ImportWithSize, a file here copied into the offered file, from ext4 (cp)', median(times.copied)),
    row('ImportWithSize, the data streamed on the local socket', median(times.socket)),
    row('ImportWithSize, the data as chunks on the bus (a sender on another host)', median(times.bus)),
    row('the same import from a local stream (no bus)', median(times.local)),
    row('dd bs=1M conv=fsync', dd),
  ];
}

void main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
