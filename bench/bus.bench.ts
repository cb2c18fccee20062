/**
 * The bus library against raw NATS, in one run on one server:
 * - request/reply latency (p50, p99) and throughput of serve()/request() vs a bare
 *   @nats-io subscribe/respond + request with the same payload; target: overhead ≤ 1.3×;
 * - qvm-ls wall time against the built vm-registry, vs a bare `node -e ''` start;
 *   target: ≤ 300 ms.
 * Run: npm run bench -- bus   (builds first; needs nothing else running)
 */
import { spawn, spawnSync } from 'node:child_process';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { connect } from '@nats-io/transport-node';
import { CLIENT_TUNING, connectBus } from '@qubes-bus/bus';
import { defineApi, DestScope, ServiceName } from '@qubes-bus/contracts';
import { createLogger } from '@qubes-bus/log';
import { startNats, tmpDataDir } from '@qubes-bus/testing';
import * as z from 'zod/mini';
import { percentile, printTable, ratio, timeMany } from './stats';

const ROOT = path.resolve(__dirname, '..');
const REQUESTS = 5_000;
const WARMUP = 500;
const CONCURRENCY = 32;
const CLI_RUNS = 20;

const Echo = defineApi({
  method: 'bench.Echo',
  service: ServiceName.VmRegistry,
  scope: DestScope.Vm,
  summary: 'echo for the benchmark',
  payload: z.object({ property: z.string(), value: z.string() }),
  reply: z.object({ property: z.string(), value: z.string() }),
  errors: [],
});
const body = { payload: { property: 'netvm', value: 'sys-firewall' } };

async function main(): Promise<void> {
  const nats = await startNats();
  const log = createLogger('bench', { level: 'warn' });
  try {
    // --- baseline: raw @nats-io request/reply ------------------------------------------------
    // The same client settings the library uses, so the ratio is the library's own cost.
    const rawServer = await connect({ servers: nats.url, ...CLIENT_TUNING });
    const rawClient = await connect({ servers: nats.url, ...CLIENT_TUNING });
    rawServer.subscribe('qubes.api.work.raw.Echo', {
      queue: 'raw',
      callback: (_err, msg) => {
        msg.respond(JSON.stringify((JSON.parse(msg.string()) as typeof body).payload));
      },
    });
    await rawServer.flush();
    const rawCall = async (): Promise<void> => {
      const reply = await rawClient.request('qubes.api.work.raw.Echo', JSON.stringify(body), { timeout: 5_000 });
      JSON.parse(reply.string());
    };

    // --- the library: serve() + request() --------------------------------------------------
    const server = await connectBus({ url: nats.url, name: 'bench-server', log, mode: 'service' });
    const client = await connectBus({ url: nats.url, name: 'bench-client', log, mode: 'tool' });
    const service = await server.createService(ServiceName.VmRegistry, { version: '0.0.0', description: 'bench' });
    service.serve(Echo, ({ payload }) => payload);
    await server.nc.flush();
    const libCall = async (): Promise<void> => {
      await client.request(Echo, body, { dest: 'work' });
    };

    const raw = await timeMany(rawCall, REQUESTS, WARMUP);
    const lib = await timeMany(libCall, REQUESTS, WARMUP);
    const rawTput = await throughput(rawCall);
    const libTput = await throughput(libCall);

    printTable('request/reply, sequential, µs', [
      ['', 'p50', 'p99', 'req/s (32 in flight)'],
      ['raw @nats-io', us(percentile(raw, 50)), us(percentile(raw, 99)), rawTput.toFixed(0)],
      ['serve()/request()', us(percentile(lib, 50)), us(percentile(lib, 99)), libTput.toFixed(0)],
      [
        'ratio (target ≤ 1.3)',
        ratio(percentile(lib, 50), percentile(raw, 50)),
        ratio(percentile(lib, 99), percentile(raw, 99)),
        ratio(rawTput, libTput),
      ],
    ]);

    await service.stop();
    await server.close();
    await client.close();
    await rawServer.close();
    await rawClient.close();

    // --- qvm-ls wall time ---------------------------------------------------------------------
    const build = spawnSync(process.execPath, [path.join(ROOT, 'tools/build.mjs'), '--quiet'], { stdio: 'inherit' });
    if (build.status !== 0) throw new Error('the build failed');
    const dataDir = tmpDataDir();
    const env = { ...process.env, QUBES_NATS_URL: nats.url, QUBES_DATA_DIR: dataDir.path, LOG_LEVEL: 'warn', LOG_FORMAT: 'json' };
    const registry = spawn(process.execPath, [path.join(ROOT, 'dist/apps/vm-registry/main.js')], { env, stdio: 'ignore' });
    try {
      const qvmLs = path.join(ROOT, 'node_modules/.bin/qvm-ls');
      for (let i = 0; i < 100; i++) {
        if (spawnSync(qvmLs, [], { env }).status === 0) break;
        await sleep(100);
      }
      const node = wallTimes(process.execPath, ['-e', ''], env);
      const cli = wallTimes(qvmLs, [], env);
      printTable('qvm-ls, wall ms over ' + CLI_RUNS + ' runs', [
        ['', 'p50', 'p90'],
        ["node -e ''", ms(percentile(node, 50)), ms(percentile(node, 90))],
        ['qvm-ls (target ≤ 300)', ms(percentile(cli, 50)), ms(percentile(cli, 90))],
        ['ratio to a bare node start', ratio(percentile(cli, 50), percentile(node, 50)), ratio(percentile(cli, 90), percentile(node, 90))],
      ]);
    } finally {
      registry.kill('SIGTERM');
      dataDir.remove();
    }
  } finally {
    await nats.stop();
  }
}

/** Requests per second with CONCURRENCY calls in flight for about a second. */
async function throughput(call: () => Promise<void>): Promise<number> {
  let done = 0;
  const until = performance.now() + 1_000;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (performance.now() < until) {
        await call();
        done++;
      }
    }),
  );
  return done / ((performance.now() - started) / 1_000);
}

function wallTimes(command: string, args: string[], env: NodeJS.ProcessEnv): number[] {
  const times: number[] = [];
  for (let i = 0; i < CLI_RUNS + 2; i++) {
    const started = performance.now();
    const run = spawnSync(command, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    if (run.status !== 0) throw new Error(`${command} failed: ${run.stderr}`);
    if (i >= 2) times.push(performance.now() - started); // two warm-up runs fill the page cache
  }
  return times;
}

const us = (millis: number): string => (millis * 1_000).toFixed(0);
const ms = (millis: number): string => millis.toFixed(0);

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
