/**
 * The sending side of the storage benchmark's import, in its own process as a tool is: asks
 * for an import of a file into a VM's volume and sends it; prints the milliseconds it took.
 * Run by storage.bench.ts: node --import tsx import-sender.ts <nats-url> <vm> <volume> <file>;
 * IMPORT_PATH=socket streams on the service's local socket rather than copy into its file;
 * IMPORT_PATH=bus sends as chunks on the bus even where the local socket is offered.
 */
import { createReadStream, statSync } from 'node:fs';
import { connectBus, copyFileInto, sendBytes } from '@qubes-bus/bus';
import { AdminVmVolumeImportWithSize } from '@qubes-bus/contracts';
import { createLogger } from '@qubes-bus/log';

async function main(): Promise<void> {
  const [url, vm, volume, file] = process.argv.slice(2) as [string, string, string, string];
  const bus = await connectBus({ url, name: 'import-sender', log: createLogger('import-sender', { level: 'error' }), mode: 'tool' });
  const started = performance.now();
  const offer = await bus.request(AdminVmVolumeImportWithSize, { arg: volume, payload: { size: statSync(file).size } }, { dest: vm });
  const via = process.env['IMPORT_PATH'] ?? 'file';
  await sendBytes(bus.nc, offer.stream, createReadStream(file, { highWaterMark: offer.chunk_bytes }), {
    chunkBytes: offer.chunk_bytes,
    window: offer.window,
    ...(via === 'bus' ? {} : { socket: offer.socket, token: offer.token }),
    ...(via === 'file' ? { file: offer.file, writeFile: copyFileInto(file) } : {}),
  });
  process.stdout.write(`${performance.now() - started}\n`);
  await bus.close();
}

void main();
