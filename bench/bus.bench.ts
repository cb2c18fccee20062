/**
 * The bus library against raw NATS, in one run on one server:
 * - request/reply latency (p50, p99) and throughput (32 in flight) of serve()/request() vs a
 *   bare @nats-io subscribe/respond + request with the same payload, in interleaved rounds
 *   (bench/bus-load.ts, bundled as the services are); targets: p50 ≤ 1.3× raw, throughput
 *   ≥ 0.9× raw; the spread over the rounds is printed, not the best one;
 * - qvm-ls wall time against the built vm-registry, vs a bare `node -e ''` start;
 *   target: ≤ 300 ms.
 * Run: npm run bench -- bus   (builds first; needs nothing else running)
 */
import { spawn, spawnSync } from 'node:child_process';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { build } from 'esbuild';
import { startNats, tmpDataDir } from '@qubes-bus/testing';
import type { Round } from './bus-load';
import { percentile, printTable, ratio } from './stats';

const ROOT = path.resolve(__dirname, '..');
const ROUNDS = 8;
const CLI_RUNS = 20;

async function main(): Promise<void> {
  const nats = await startNats();
  try {
    const rounds = await requestRounds(nats.url);
    const median = (values: number[]): number => percentile(values, 50);
    const spread = (values: number[]): string => `${Math.min(...values).toFixed(2)}-${Math.max(...values).toFixed(2)}`;
    const rows: string[][] = [['', 'p50 µs', 'p99 µs', 'req/s (32 in flight)']];
    for (const [name, label] of [['raw', 'raw @nats-io'], ['lib', 'serve()/request()'], ['onward', '  with a request id']] as const) {
      rows.push([
        label,
        us(median(rounds.map((r) => r[name].p50))),
        us(median(rounds.map((r) => r[name].p99))),
        median(rounds.map((r) => r[name].perSecond)).toFixed(0),
      ]);
    }
    // Each round's ratio, its own raw run beside it: the median and the spread over the rounds.
    for (const name of ['lib', 'onward'] as const) {
      const p50 = rounds.map((r) => r[name].p50 / r.raw.p50);
      const p99 = rounds.map((r) => r[name].p99 / r.raw.p99);
      const tput = rounds.map((r) => r[name].perSecond / r.raw.perSecond);
      rows.push([
        `${name} / raw, median (min-max)`,
        `${median(p50).toFixed(2)}x (${spread(p50)})`,
        `${median(p99).toFixed(2)}x (${spread(p99)})`,
        `${median(tput).toFixed(2)}x (${spread(tput)})`,
      ]);
    }
    rows.push(['target', '≤ 1.30x', '', '≥ 0.90x']);
    printTable(`request/reply over ${ROUNDS} interleaved rounds`, rows);

    // --- qvm-ls wall time ---------------------------------------------------------------------
    const built = spawnSync(process.execPath, [path.join(ROOT, 'tools/build.mjs'), '--quiet'], { stdio: 'inherit' });
    if (built.status !== 0) throw new Error('the build failed');
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

/** The load script, bundled and run by node, printing one JSON line per round. */
async function requestRounds(url: string): Promise<Round[]> {
  const bundle = path.join(ROOT, 'dist/bench/bus-load.js');
  await build({
    entryPoints: [path.join(__dirname, 'bus-load.ts')],
    outfile: bundle,
    bundle: true,
    platform: 'node',
    target: 'node20',
    format: 'cjs',
    tsconfig: path.join(ROOT, 'tsconfig.base.json'),
    logLevel: 'warning',
  });
  const run = spawnSync(process.execPath, [bundle, url, String(ROUNDS)], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
  if (run.status !== 0) throw new Error(`the load script failed with status ${run.status}`);
  return run.stdout.trim().split('\n').map((line) => JSON.parse(line) as Round);
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
