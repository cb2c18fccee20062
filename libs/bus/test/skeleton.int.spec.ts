import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { defineApi, DestScope, ServiceName } from '@qubes-bus/contracts';
import { captureLog, rejectionOf, startNats, type TestNats } from '@qubes-bus/testing';
import * as z from 'zod/mini';
import { connectBus, serviceSkeleton, type Bus } from '../src';

// An endpoint of this test only; the contract's real ones live in libs/contracts.
const Wait = defineApi({
  method: 'test.Wait',
  service: ServiceName.Storage,
  scope: DestScope.Dom0,
  summary: 'answers after a while',
  payload: z.object({ ms: z.int() }),
  reply: z.object({ waited: z.int() }),
  errors: [],
});

let nats: TestNats;
let client: Bus;

beforeAll(async () => {
  nats = await startNats();
  client = await connectBus({ url: nats.url, name: 'test-client', log: captureLog('client').log, mode: 'tool' });
});

afterAll(async () => {
  await client?.close();
  await nats?.stop();
});

describe('the service skeleton', () => {
  it('answers nothing until its set-up is done, then serves, says so, and shows in $SRV.PING', async () => {
    const captured = captureLog('storage');
    const bus = await connectBus({ url: nats.url, name: 'storage', log: captured.log, mode: 'service' });
    let finishSetUp!: () => void;
    const setUpDone = new Promise<void>((resolve) => (finishSetUp = resolve));
    const service = serviceSkeleton(bus, captured.log, {
      name: ServiceName.Storage,
      version: '1.2.3',
      description: 'test',
      async setUp(router) {
        router.serve(Wait, ({ payload }) => ({ waited: payload.ms }));
        await setUpDone;
        return { fields: { pools: 2 } };
      },
    });
    const starting = service.start();
    await new Promise((resolve) => setTimeout(resolve, 200));
    const early = await rejectionOf(client.request(Wait, { payload: { ms: 0 } }, { timeoutMs: 500 }));
    expect(early.code).toBe('SERVICE_UNAVAILABLE');

    finishSetUp();
    await starting;
    await expect(client.request(Wait, { payload: { ms: 0 } })).resolves.toEqual({ waited: 0 });
    expect(captured.lines().find((l) => l['msg'] === 'storage serving')).toMatchObject({ version: '1.2.3', pools: 2 });
    const pings = await client.nc.request('$SRV.PING.storage', '', { timeout: 2_000 });
    expect(pings.json()).toMatchObject({ name: 'storage', version: '1.2.3' });
    const stats = (await client.nc.request('$SRV.STATS.storage', '', { timeout: 2_000 })).json<{ endpoints: Array<{ data: unknown }> }>();
    expect(stats.endpoints[0]?.data).toEqual({ events_not_stored: 0 });
    await service.stop();
    await bus.close();
  });

  it('refuses a handler of another service at set-up, naming both', async () => {
    const captured = captureLog('vm-registry');
    const bus = await connectBus({ url: nats.url, name: 'vm-registry', log: captured.log, mode: 'service' });
    const service = serviceSkeleton(bus, captured.log, {
      name: ServiceName.VmRegistry,
      version: '0.0.0',
      description: 'test',
      setUp: (router) => router.serve(Wait, () => ({ waited: 0 })),
    });
    await expect(service.start()).rejects.toThrow('test.Wait belongs to storage, not vm-registry');
    await bus.close();
  });

  it('stops by answering the requests it has taken, then tears down', async () => {
    const captured = captureLog('storage');
    const bus = await connectBus({ url: nats.url, name: 'storage', log: captured.log, mode: 'service' });
    const order: string[] = [];
    const service = serviceSkeleton(bus, captured.log, {
      name: ServiceName.Storage,
      version: '0.0.0',
      description: 'test',
      setUp(router) {
        router.serve(Wait, async ({ payload }) => {
          await new Promise((resolve) => setTimeout(resolve, payload.ms));
          order.push('answered');
          return { waited: payload.ms };
        });
        return { tearDown: async () => void order.push('torn down') };
      },
    });
    await service.start();
    const slow = client.request(Wait, { payload: { ms: 300 } });
    await new Promise((resolve) => setTimeout(resolve, 50)); // taken by the service
    await service.stop();
    await expect(slow).resolves.toEqual({ waited: 300 });
    expect(order).toEqual(['answered', 'torn down']);
    await bus.close();
  });
});
