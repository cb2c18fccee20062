import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { connectBus, type Bus } from '@qubes-bus/bus';
import { AdminVmCreate, AdminVmFeature, AdminVmList } from '@qubes-bus/contracts';
import { loadQubesXml } from '@qubes-bus/qubes-model';
import { captureLog, startNats, tmpDataDir, type TestNats, type TmpDir } from '@qubes-bus/testing';

/**
 * Crash safety, for real: the registry process is killed with SIGKILL at random moments while
 * clients write. After every kill qubes.xml must parse, and every write that had been
 * acknowledged must be in it. Two lanes (each its own bus, data dir and registry) run side by
 * side to use both cores.
 */
const LANES = 2;
const KILLS_PER_LANE = 100;
const WRITERS = 4;
const ROOT = path.resolve(__dirname, '../../..');
const BUNDLE = path.join(ROOT, 'dist/apps/vm-registry/main.js');

interface Lane {
  nats: TestNats;
  dir: TmpDir;
  clients: Bus[];
}

const lanes: Lane[] = [];
const children = new Set<ChildProcess>();

beforeAll(async () => {
  execFileSync(process.execPath, [path.join(ROOT, 'tools/build.mjs'), '--quiet'], { stdio: 'inherit' });
  for (let i = 0; i < LANES; i++) {
    const nats = await startNats();
    const clients: Bus[] = [];
    for (let w = 0; w < WRITERS; w++) {
      clients.push(await connectBus({ url: nats.url, name: `writer-${w}`, log: captureLog('writer', 'fatal').log, mode: 'tool' }));
    }
    lanes.push({ nats, dir: tmpDataDir(), clients });
  }
}, 120_000);

afterAll(async () => {
  for (const child of children) child.kill('SIGKILL');
  for (const lane of lanes) {
    for (const c of lane.clients) await c.close();
    await lane.nats.stop();
    lane.dir.remove();
  }
});

function startRegistry(lane: Lane): ChildProcess {
  const child = spawn(process.execPath, [BUNDLE], {
    env: { ...process.env, QUBES_NATS_URL: lane.nats.url, QUBES_DATA_DIR: lane.dir.path, LOG_FORMAT: 'json', LOG_LEVEL: 'warn' },
    stdio: 'ignore',
  });
  children.add(child);
  child.once('exit', () => children.delete(child));
  return child;
}

async function untilServing(client: Bus): Promise<void> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    try {
      await client.request(AdminVmList, {}, { dest: 'dom0', timeoutMs: 1_000 });
      return;
    } catch (err) {
      if (Date.now() > deadline) throw new Error(`the registry did not come back after a kill: ${(err as Error).message}`);
      await sleep(10);
    }
  }
}

async function runLane(lane: Lane): Promise<number> {
  const acked = new Array<number>(WRITERS).fill(0);
  let next = 0;
  let stop = false;
  // Writers go on across kills: a write that fails may or may not have been saved, and the
  // next one writes a higher number anyway.
  const writers = lane.clients.map(async (client, w) => {
    while (!stop) {
      const value = ++next;
      try {
        await client.request(AdminVmFeature.Set, { arg: `w${w}`, payload: { value: String(value) } }, { dest: 'work', timeoutMs: 2_000 });
        acked[w] = Math.max(acked[w]!, value);
      } catch {
        await sleep(5);
      }
    }
  });

  let kills = 0;
  let first = true;
  for (; kills < KILLS_PER_LANE; kills++) {
    const registry = startRegistry(lane);
    await untilServing(lane.clients[0]!);
    if (first) {
      await lane.clients[0]!.request(AdminVmCreate.StandaloneVM, { payload: { name: 'work', label: 'red' } }).catch(() => undefined);
      first = false;
    }
    await sleep(10 + Math.random() * 90);
    const exited = new Promise((resolve) => registry.once('exit', resolve));
    registry.kill('SIGKILL');
    await exited;
    await sleep(20); // replies already on the wire reach their writers

    const { app } = loadQubesXml(readFileSync(path.join(lane.dir.path, 'qubes.xml'), 'utf8'), 'qubes.xml');
    const features = app.exists('work') ? app.domain('work').features : new Map<string, string>();
    for (let w = 0; w < WRITERS; w++) {
      const onDisk = Number(features.get(`w${w}`) ?? '0');
      if (onDisk < acked[w]!) throw new Error(`kill ${kills}: writer ${w} was told ${acked[w]} is saved, qubes.xml has ${onDisk}`);
    }
  }
  stop = true;
  await Promise.all(writers);
  expect(Math.min(...acked)).toBeGreaterThan(0); // every writer got writes through
  return kills;
}

describe('crash safety', () => {
  it(`qubes.xml parses and holds every acknowledged write after each of ${LANES * KILLS_PER_LANE} SIGKILLs of the registry mid-write`, async () => {
    const kills = await Promise.all(lanes.map(runLane));
    expect(kills.reduce((a, b) => a + b, 0)).toBe(LANES * KILLS_PER_LANE);
  }, 600_000);
});
