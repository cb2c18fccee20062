/**
 * The registry, measured (issue 3), each against a baseline run in the same script:
 * - load and save of a 10,000-VM qubes.xml, against fast-xml-parser's bare validate+parse and a
 *   bare write+fsync of the same bytes (target: load ≤ 1 s);
 * - durable admin.vm.property.Set over the bus with 1 and 64 concurrent clients, group commit
 *   against one save per change (target: ≥ 3,000 sets/s with 64 clients);
 * - qvm-ls over 1,000 VMs, wall time, against a bare `node -e ''` (target: ≤ 300 ms).
 * Run: npm run bench -- registry
 */
import { spawn, spawnSync } from 'node:child_process';
import { constants, promises as fs, writeFileSync } from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { XMLParser, XMLValidator } from 'fast-xml-parser';
import { connectBus } from '@qubes-bus/bus';
import { AdminVmList } from '@qubes-bus/contracts';
import { createLogger } from '@qubes-bus/log';
import { loadQubesXml, serializeQubesXml } from '@qubes-bus/qubes-model';
import { startNats, tmpDataDir, type TestNats } from '@qubes-bus/testing';
import { createRegistry } from '../apps/vm-registry/src/service';
import { QubesStore } from '../apps/vm-registry/src/store/qubes-store';
import { workerValidator } from '../apps/vm-registry/src/validate-worker';
import { percentile, printTable, ratio, timeMany } from './stats';

const ROOT = path.resolve(__dirname, '..');
const log = createLogger('bench', { level: 'error' });

/** A qubes.xml with dom0, a template, and `appvms` AppVMs as a real installation has them. */
export function generateQubesXml(appvms: number, dataDir = '/var/lib/qubes'): string {
  const labels = ['red', 'orange', 'yellow', 'green', 'gray', 'blue', 'purple', 'black'];
  const colors = ['0xcc0000', '0xf57900', '0xedd400', '0x73d216', '0x555555', '0x3465a4', '0x75507b', '0x000000'];
  const out: string[] = [`<?xml version='1.0' encoding='UTF-8'?>\n<qubes>\n  <labels>`];
  labels.forEach((l, i) => out.push(`    <label id="label-${i + 1}" color="${colors[i]}">${l}</label>`));
  out.push(`  </labels>\n  <pools>\n    <pool dir_path="${dataDir}" driver="file-reflink" name="varlibqubes" revisions_to_keep="1"/>\n  </pools>`);
  out.push(`  <properties>\n    <property name="default_template">fedora-40</property>\n    <property name="default_netvm">sys-firewall</property>\n  </properties>\n  <domains>`);
  out.push(`    <domain id="domain-0" class="AdminVM">\n      <properties>\n        <property name="label" ref="label-8"/>\n      </properties>\n      <features/>\n      <tags/>\n    </domain>`);
  const volume = (vm: string, name: string, extra: string) =>
    `        <volume name="${name}" pool="varlibqubes" revisions_to_keep="1" rw="True" vid="appvms/${vm}/${name}" ${extra}/>`;
  const domain = (qid: number, klass: string, name: string, props: string[]) =>
    [
      `    <domain id="domain-${qid}" class="${klass}">`,
      '      <properties>',
      `        <property name="qid">${qid}</property>`,
      `        <property name="name">${name}</property>`,
      `        <property name="uuid">${crypto.randomUUID()}</property>`,
      `        <property name="label" ref="label-${(qid % 8) + 1}"/>`,
      ...props.map((p) => `        ${p}`),
      '      </properties>',
      '      <features>',
      '        <feature name="service.cups">1</feature>',
      `        <feature name="menu-items">org.gnome.Terminal.desktop firefox.desktop</feature>`,
      '      </features>',
      '      <tags>',
      '        <tag name="created-by-dom0"/>',
      '      </tags>',
      '      <volume-config>',
      volume(name, 'private', 'save_on_stop="True" size="2147483648"'),
      volume(name, 'volatile', 'size="12884901888"'),
      '      </volume-config>',
      '    </domain>',
    ].join('\n');
  out.push(domain(1, 'TemplateVM', 'fedora-40', ['<property name="installed_by_rpm">True</property>']));
  out.push(domain(2, 'AppVM', 'sys-net', ['<property name="template">fedora-40</property>', '<property name="provides_network">True</property>', '<property name="netvm"></property>']));
  out.push(domain(3, 'AppVM', 'sys-firewall', ['<property name="template">fedora-40</property>', '<property name="provides_network">True</property>', '<property name="netvm">sys-net</property>']));
  for (let qid = 4; qid < appvms + 4 - 2; qid++) {
    out.push(domain(qid, 'AppVM', `vm-${qid}`, ['<property name="template">fedora-40</property>', `<property name="memory">${400 + (qid % 8) * 100}</property>`]));
  }
  out.push('  </domains>\n</qubes>\n');
  return out.join('\n');
}

async function loadAndSave(): Promise<void> {
  const dir = tmpDataDir();
  const text = generateQubesXml(9_998, dir.path); // + dom0 and the template: 10,000 VMs
  const file = path.join(dir.path, 'qubes.xml');
  writeFileSync(file, text);
  const runs = 5;
  const bareParser = new XMLParser({ preserveOrder: true, ignoreAttributes: false, parseTagValue: false, parseAttributeValue: false, trimValues: false });
  const bare = await timeMany(async () => {
    XMLValidator.validate(text);
    bareParser.parse(text);
  }, runs, 1);
  // As the registry loads it: read under the lock, validated in a worker beside the parse.
  const validator = workerValidator(path.join(ROOT, 'dist/apps/vm-registry/xml-validation.worker.js'));
  let app = loadQubesXml(text).app;
  const load = await timeMany(async () => {
    const store = await QubesStore.open({ dataDir: dir.path, log, whenLocked: 'fail', create: false, validator });
    app = store.app;
    await store.close();
  }, runs, 1);
  const writeSynced = async (target: string, bytes: string): Promise<void> => {
    const handle = await fs.open(target, constants.O_WRONLY | constants.O_CREAT | constants.O_TRUNC);
    await handle.writeFile(bytes);
    await handle.sync();
    await handle.close();
  };
  const scratch = path.join(dir.path, 'scratch.xml');
  const bareWrite = await timeMany(() => writeSynced(scratch, text), runs, 1);
  const save = await timeMany(() => writeSynced(scratch, serializeQubesXml(app)), runs, 1);
  dir.remove();
  printTable(`qubes.xml of 10,000 VMs (${(text.length / 1e6).toFixed(1)} MB), median ms of ${runs}`, [
    ['', 'ms', 'baseline ms', 'ratio'],
    ['load (lock, read, validate beside parse, model, checks) vs bare validate+parse (target ≤ 1000 ms)', ms(percentile(load, 50)), ms(percentile(bare, 50)), ratio(percentile(load, 50), percentile(bare, 50))],
    ['save (serialise, write, fsync) vs bare write+fsync', ms(percentile(save, 50)), ms(percentile(bareWrite, 50)), ratio(percentile(save, 50), percentile(bareWrite, 50))],
  ]);
}

interface SetFigures {
  p50: number;
  p99: number;
  perSecond: number;
}

/**
 * Durable property sets through the bus: the registry here, its clients in another process
 * (bench/set-load.ts), as real clients are.
 */
async function propertySets(nats: TestNats, clients: number, saveEachChange: boolean): Promise<SetFigures> {
  const dir = tmpDataDir();
  writeFileSync(path.join(dir.path, 'qubes.xml'), generateQubesXml(100, dir.path));
  const server = await connectBus({ url: nats.url, name: 'registry', log, mode: 'service' });
  const registry = createRegistry({ bus: server, log, dataDir: dir.path, saveEachChange });
  await registry.start();
  // spawn, not spawnSync: the registry answers on this process's event loop meanwhile
  const load = spawn(process.execPath, ['--import', 'tsx', path.join(__dirname, 'set-load.ts'), nats.url, String(clients), '3'], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let out = '';
  load.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
  const status = await new Promise<number | null>((resolve) => load.once('exit', resolve));
  await registry.stop();
  await server.close();
  dir.remove();
  if (status !== 0) throw new Error(`the load failed (${status})`);
  return JSON.parse(out) as SetFigures;
}

async function sets(nats: TestNats): Promise<void> {
  const rows: string[][] = [['', 'p50 ms', 'p99 ms', 'sets/s']];
  const results: Record<string, SetFigures> = {};
  for (const clients of [1, 64]) {
    for (const saveEachChange of [true, false]) {
      const key = `${clients} client${clients > 1 ? 's' : ''}, ${saveEachChange ? 'save per change' : 'group commit'}`;
      const r = await propertySets(nats, clients, saveEachChange);
      results[key] = r;
      rows.push([key, r.p50.toFixed(2), r.p99.toFixed(2), r.perSecond.toFixed(0)]);
    }
  }
  const g64 = results['64 clients, group commit']!;
  const s64 = results['64 clients, save per change']!;
  rows.push(['ratio 64 clients: group commit / save per change', ratio(s64.p50, g64.p50), ratio(s64.p99, g64.p99), ratio(g64.perSecond, s64.perSecond)]);
  printTable('durable admin.vm.property.Set over the bus, 100-VM store (target ≥ 3000 sets/s with 64 clients)', rows);
}

async function qvmLs(nats: TestNats): Promise<void> {
  const dir = tmpDataDir();
  writeFileSync(path.join(dir.path, 'qubes.xml'), generateQubesXml(998, dir.path));
  const env = { ...process.env, QUBES_NATS_URL: nats.url, QUBES_DATA_DIR: dir.path, LOG_LEVEL: 'warn', LOG_FORMAT: 'json' };
  const registry = spawn(process.execPath, [path.join(ROOT, 'dist/apps/vm-registry/main.js')], { env, stdio: 'ignore' });
  try {
    const probe = await connectBus({ url: nats.url, name: 'probe', log, mode: 'tool' });
    for (;;) {
      try {
        await probe.request(AdminVmList, {});
        break;
      } catch {
        await sleep(50);
      }
    }
    await probe.close();
    const tool = path.join(ROOT, 'node_modules/.bin/qvm-ls');
    const wall = (command: string, args: string[]): number[] => {
      const times: number[] = [];
      for (let i = 0; i < 12; i++) {
        const t = performance.now();
        const run = spawnSync(command, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
        if (run.status !== 0) throw new Error(`${command} failed: ${run.stderr}`);
        if (i >= 2) times.push(performance.now() - t);
      }
      return times;
    };
    const node = wall(process.execPath, ['-e', '']);
    const ls = wall(tool, []);
    printTable('qvm-ls over 1,000 VMs, wall ms (target ≤ 300)', [
      ['', 'p50', 'p90'],
      ["node -e ''", ms(percentile(node, 50)), ms(percentile(node, 90))],
      ['qvm-ls', ms(percentile(ls, 50)), ms(percentile(ls, 90))],
      ['ratio to a bare node start', ratio(percentile(ls, 50), percentile(node, 50)), ratio(percentile(ls, 90), percentile(node, 90))],
    ]);
  } finally {
    registry.kill('SIGTERM');
    dir.remove();
  }
}

const ms = (millis: number): string => millis.toFixed(0);

async function main(): Promise<void> {
  const build = spawnSync(process.execPath, [path.join(ROOT, 'tools/build.mjs'), '--quiet'], { stdio: 'inherit' });
  if (build.status !== 0) throw new Error('the build failed');
  await loadAndSave();
  const nats = await startNats();
  try {
    await sets(nats);
    await qvmLs(nats);
  } finally {
    await nats.stop();
  }
}

if (require.main === module) {
  main().catch((err: unknown) => {
    console.error(err);
    process.exit(1);
  });
}
