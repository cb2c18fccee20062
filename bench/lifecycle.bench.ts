/**
 * The VM lifecycle, measured (issue 4), each against a baseline run in the same script:
 * - start and stop of 20 disk-less QEMU domains through the bus (admin.vm.Start, admin.vm.Kill:
 *   answered once the stop is handled) against `virsh start` / `virsh destroy` of 20 twin
 *   domains, one bus call and one virsh call after the other so that drift hits both alike
 *   (target: bus at most 1.2x);
 * - event delivery from libvirt to a bus subscriber: for each pause made outside the registry,
 *   the time from libvirt's own event (a `virsh event` of this script) to `domain-paused`
 *   reaching a subscriber (p50/p99).
 * Run: npm run bench -- lifecycle
 */
import { execFile, spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { connectBus } from '@qubes-bus/bus';
import { AdminProperty, AdminVmCreate, AdminVmKill, AdminVmRemove, AdminVmStart, DomainPaused } from '@qubes-bus/contracts';
import { buildDomainXml, DomainFlavor, LibvirtHypervisor, parseEventLine } from '@qubes-bus/hypervisor';
import { createLogger } from '@qubes-bus/log';
import { startLibvirtd, startNats, tmpDataDir } from '@qubes-bus/testing';
import { createRegistry } from '../apps/vm-registry/src/service';
import { percentile, printTable, ratio } from './stats';

const DOMAINS = 20;
const PAUSES = 200;
const log = createLogger('bench', { level: 'error' });
const run = promisify(execFile);

async function main(): Promise<void> {
  const [nats, libvirtd] = await Promise.all([startNats(), startLibvirtd({ driver: 'qemu' })]);
  const dir = tmpDataDir();
  const server = await connectBus({ url: nats.url, name: 'vm-registry', log, mode: 'service' });
  const client = await connectBus({ url: nats.url, name: 'bench', log, mode: 'tool' });
  const registry = createRegistry({ bus: server, log, dataDir: dir.path, hypervisor: new LibvirtHypervisor(libvirtd.uri, { flavor: DomainFlavor.Qemu }) });
  const outside = new LibvirtHypervisor(libvirtd.uri);
  const virsh = (...args: string[]) => run('virsh', ['-c', libvirtd.uri, ...args]);
  const prefix = `bench${process.pid}`;
  const vms = Array.from({ length: DOMAINS }, (_, i) => `${prefix}-vm${i}`);
  const twins = Array.from({ length: DOMAINS }, (_, i) => `${prefix}-virsh${i}`);
  try {
    await registry.start();
    await client.request(AdminProperty.Set, { arg: 'default_netvm', payload: { value: '' } });
    for (const [i, name] of vms.entries()) {
      await client.request(AdminVmCreate.StandaloneVM, { payload: { name, label: 'red', properties: { memory: 128, vcpus: 1 } } });
      const xml = path.join(dir.path, `twin${i}.xml`);
      // The twin is what the registry defines for its VM, under another name.
      writeFileSync(xml, buildDomainXml({ name: twins[i]!, memoryMiB: 128, maxmemMiB: 128, vcpus: 1, virtMode: 'pvh', kernel: null, disks: [], debug: false }, DomainFlavor.Qemu));
      await virsh('define', xml);
    }

    const time = async (call: () => Promise<unknown>): Promise<number> => {
      const started = performance.now();
      await call();
      return performance.now() - started;
    };
    const starts = { bus: [] as number[], virsh: [] as number[] };
    const stops = { bus: [] as number[], virsh: [] as number[] };
    for (let i = 0; i < DOMAINS; i++) {
      starts.virsh.push(await time(() => virsh('start', twins[i]!)));
      starts.bus.push(await time(() => client.request(AdminVmStart, {}, { dest: vms[i]! })));
    }

    // Event delivery, while all 40 run: pauses from outside, seen by libvirt, then by a subscriber.
    const raw = new Map<string, number>();
    const monitor = spawn('virsh', ['-c', libvirtd.uri, 'event', '--all', '--loop', '--timestamp'], { stdio: ['ignore', 'pipe', 'ignore'] });
    createInterface({ input: monitor.stdout }).on('line', (line) => {
      const event = parseEventLine(line);
      if (event?.kind === 'suspended') raw.set(event.domain, performance.now());
    });
    const subscription = await client.subscribe(DomainPaused.pattern());
    const delivered = new Map<string, number>();
    void (async () => {
      for await (const event of subscription) delivered.set(event.message.vm!, performance.now());
    })();
    await new Promise((resolve) => setTimeout(resolve, 500)); // the monitor listens
    const fromLibvirt: number[] = [];
    const fromCall: number[] = [];
    const uuids = new Map((await outside.list()).map((d) => [d.name, d.uuid]));
    for (let i = 0; i < PAUSES; i++) {
      const vm = vms[i % DOMAINS]!;
      raw.delete(vm);
      delivered.delete(vm);
      const called = performance.now();
      await outside.pause(uuids.get(vm)!);
      while (!delivered.has(vm) || !raw.has(vm)) await new Promise((resolve) => setTimeout(resolve, 1));
      fromLibvirt.push(delivered.get(vm)! - raw.get(vm)!);
      fromCall.push(delivered.get(vm)! - called);
      await outside.resume(uuids.get(vm)!);
      await new Promise((resolve) => setTimeout(resolve, 5)); // the unpause is seen before the next pause
    }
    monitor.kill();
    await subscription.stop();

    for (let i = 0; i < DOMAINS; i++) {
      stops.virsh.push(await time(() => virsh('destroy', twins[i]!)));
      stops.bus.push(await time(() => client.request(AdminVmKill, {}, { dest: vms[i]! })));
    }

    const sum = (values: number[]): number => values.reduce((a, b) => a + b, 0);
    const ms = (value: number): string => value.toFixed(0);
    printTable(`start and stop of ${DOMAINS} disk-less QEMU domains, total ms (target: bus ≤ 1.2x)`, [
      ['', 'bus', 'virsh', 'ratio'],
      ['start', ms(sum(starts.bus)), ms(sum(starts.virsh)), ratio(sum(starts.bus), sum(starts.virsh))],
      ['stop', ms(sum(stops.bus)), ms(sum(stops.virsh)), ratio(sum(stops.bus), sum(stops.virsh))],
      ['start + stop', ms(sum(starts.bus) + sum(stops.bus)), ms(sum(starts.virsh) + sum(stops.virsh)), ratio(sum(starts.bus) + sum(stops.bus), sum(starts.virsh) + sum(stops.virsh))],
      ['start p50 (one)', ms(percentile(starts.bus, 50)), ms(percentile(starts.virsh, 50)), ratio(percentile(starts.bus, 50), percentile(starts.virsh, 50))],
      ['stop p50 (one)', ms(percentile(stops.bus, 50)), ms(percentile(stops.virsh, 50)), ratio(percentile(stops.bus, 50), percentile(stops.virsh, 50))],
    ]);
    const ms1 = (value: number): string => value.toFixed(1);
    printTable(`event delivery, ${PAUSES} pauses made outside the registry, ms`, [
      ['', 'p50', 'p99'],
      ["libvirt's event → domain-paused at a subscriber", ms1(percentile(fromLibvirt, 50)), ms1(percentile(fromLibvirt, 99))],
      ['pause call → domain-paused at a subscriber', ms1(percentile(fromCall, 50)), ms1(percentile(fromCall, 99))],
    ]);
  } finally {
    for (const vm of vms) {
      await client.request(AdminVmKill, {}, { dest: vm }).catch(() => undefined);
      await client.request(AdminVmRemove, {}, { dest: vm }).catch(() => undefined);
    }
    for (const twin of twins) {
      await virsh('destroy', twin).catch(() => undefined);
      await virsh('undefine', twin).catch(() => undefined);
    }
    await registry.stop();
    await outside.close();
    await client.close();
    await server.close();
    await Promise.all([nats.stop(), libvirtd.stop()]);
    dir.remove();
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
