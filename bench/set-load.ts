/**
 * Load for registry.bench.ts, in a process of its own as real clients are: `clients`
 * connections each setting a property in a loop for `seconds`; prints latencies as JSON.
 * Usage: set-load.ts <nats-url> <clients> <seconds>
 */
import { connectBus, type Bus } from '@qubes-bus/bus';
import { AdminVmProperty } from '@qubes-bus/contracts';
import { createLogger } from '@qubes-bus/log';
import { percentile } from './stats';

async function main(): Promise<void> {
  const [url, clientsArg, secondsArg] = process.argv.slice(2);
  const clients = Number(clientsArg);
  const seconds = Number(secondsArg);
  const log = createLogger('set-load', { level: 'error' });
  const buses: Bus[] = [];
  for (let i = 0; i < clients; i++) buses.push(await connectBus({ url: url!, name: `c${i}`, log, mode: 'tool' }));
  const latencies: number[] = [];
  let n = 0;
  const started = performance.now();
  const until = started + seconds * 1_000;
  await Promise.all(
    buses.map(async (bus, i) => {
      const vm = `vm-${4 + (i % 90)}`;
      while (performance.now() < until) {
        const t = performance.now();
        await bus.request(AdminVmProperty.Set, { arg: 'qrexec_timeout', payload: { value: 60 + (n++ % 100) } }, { dest: vm });
        latencies.push(performance.now() - t);
      }
    }),
  );
  const elapsed = (performance.now() - started) / 1_000;
  for (const b of buses) await b.close();
  process.stdout.write(JSON.stringify({ p50: percentile(latencies, 50), p99: percentile(latencies, 99), perSecond: latencies.length / elapsed }) + '\n');
}

void main();
