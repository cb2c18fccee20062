/**
 * The sending side of the storage benchmark's import, in its own process as a tool is: asks
 * for an import of a file into a VM's volume and sends it; prints the milliseconds it took.
 * Run by storage.bench.ts: node --import tsx import-sender.ts <nats-url> <vm> <volume> <file>;
 * IMPORT_PATH=bus sends as chunks on the bus even where the local socket is offered.
 */
import { createReadStream, statSync } from 'node:fs';
import { connectBus, sendBytes } from '@qubes-bus/bus';
import { AdminVmVolumeImportWithSize } from '@qubes-bus/contracts';
import { createLogger } from '@qubes-bus/log';

async function main(): Promise<void> {
  const [url, vm, volume, file] = process.argv.slice(2) as [string, string, string, string];
  const bus = await connectBus({ url, name: 'import-sender', log: createLogger('import-sender', { level: 'error' }), mode: 'tool' });
  const started = performance.now();
  const { stream, chunk_bytes, window, socket, token } = await bus.request(AdminVmVolumeImportWithSize, { arg: volume, payload: { size: statSync(file).size } }, { dest: vm });
  const local = process.env['IMPORT_PATH'] !== 'bus';
  await sendBytes(bus.nc, stream, createReadStream(file, { highWaterMark: chunk_bytes }), { chunkBytes: chunk_bytes, window, ...(local ? { socket, token } : {}) });
  process.stdout.write(`${performance.now() - started}\n`);
  await bus.close();
}

void main();
