/**
 * The measured half of bus.bench.ts, bundled by esbuild and run by plain node as the services
 * and tools are (tsx's per-call helpers would count against the library otherwise).
 * On one nats-server, in one process: raw @nats-io request/reply against serve()/request()
 * with the same payload and client settings, in interleaved rounds (raw first in one round,
 * last in the next) so that the machine's noise falls on both. Prints one JSON line per round.
 * Usage: node bus-load.js <nats-url> <rounds>
 */
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { CLIENT_TUNING, connectBus } from '@qubes-bus/bus';
import { defineApi, DestScope, ServiceName } from '@qubes-bus/contracts';
import { createLogger } from '@qubes-bus/log';
import * as z from 'zod/mini';
import { percentile, timeMany } from './stats';

const SEQUENTIAL = 2_000;
const WARMUP = 300;
const CONCURRENCY = 32;
const THROUGHPUT_MS = 700;

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

export interface Figures {
  p50: number;
  p99: number;
  perSecond: number;
}

export type Round = Record<'raw' | 'lib' | 'onward', Figures>;

type Call = () => Promise<void>;

async function main(): Promise<void> {
  const [url, roundsArg] = process.argv.slice(2);
  const log = createLogger('bench', { level: 'warn' });

  // The baseline: a bare subscription answering with the payload, and bare requests.
  const rawServer: NatsConnection = await connect({ servers: url!, ...CLIENT_TUNING });
  const rawClient: NatsConnection = await connect({ servers: url!, ...CLIENT_TUNING });
  rawServer.subscribe('qubes.api.work.raw.Echo', {
    queue: 'raw',
    callback: (_err, msg) => {
      msg.respond(JSON.stringify((JSON.parse(msg.string()) as typeof body).payload));
    },
  });
  await rawServer.flush();
  const raw: Call = async () => {
    const reply = await rawClient.request('qubes.api.work.raw.Echo', JSON.stringify(body), { timeout: 5_000 });
    JSON.parse(reply.string());
  };

  // The library: a micro service with schema checks both ways, request ids, error sorting.
  const server = await connectBus({ url: url!, name: 'bench-server', log, mode: 'service' });
  const client = await connectBus({ url: url!, name: 'bench-client', log, mode: 'tool' });
  const service = await server.createService(ServiceName.VmRegistry, { version: '0.0.0', description: 'bench' });
  service.serve(Echo, ({ payload }) => payload);
  await server.nc.flush();
  const lib: Call = async () => {
    await client.request(Echo, body, { dest: 'work' });
  };
  // An onward call between services carries its caller's request id in a header.
  const onward: Call = async () => {
    await client.request(Echo, body, { dest: 'work', reqId: 'bench-request-id' });
  };

  const calls = { raw, lib, onward };
  for (let round = 0; round < Number(roundsArg); round++) {
    const order = (round % 2 === 0 ? ['raw', 'lib', 'onward'] : ['onward', 'lib', 'raw']) as Array<keyof Round>;
    const figures: Partial<Round> = {};
    for (const name of order) figures[name] = await measure(calls[name]);
    process.stdout.write(`${JSON.stringify(figures)}\n`);
  }

  await service.stop();
  await server.close();
  await client.close();
  await rawServer.close();
  await rawClient.close();
}

async function measure(call: Call): Promise<Figures> {
  const times = await timeMany(call, SEQUENTIAL, WARMUP);
  return { p50: percentile(times, 50), p99: percentile(times, 99), perSecond: await throughput(call) };
}

/** Requests per second with CONCURRENCY calls in flight for THROUGHPUT_MS. */
async function throughput(call: Call): Promise<number> {
  let done = 0;
  const started = performance.now();
  const until = started + THROUGHPUT_MS;
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

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
