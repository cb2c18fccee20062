import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { headers as natsHeaders } from '@nats-io/nats-core';
import { Svcm } from '@nats-io/services';
import { defineApi, DestScope, QubesError, ServiceName, type ErrorCode } from '@qubes-bus/contracts';
import { captureLog, rejectionOf, startNats, type CapturedLog, type TestNats } from '@qubes-bus/testing';
import * as z from 'zod/mini';
import { connectBus, SERVICE_ERROR_CODE_HEADER, type Bus, type BusService } from '../src';

// Endpoints of this test only; the contract's real ones live in libs/contracts.
const Echo = defineApi({
  method: 'test.Echo',
  service: ServiceName.VmRegistry,
  scope: DestScope.Vm,
  summary: 'echo',
  arg: z.optional(z.string()),
  payload: z.object({ text: z.string(), count: z.int().check(z.minimum(0)) }),
  reply: z.object({ text: z.string(), dest: z.string(), reqId: z.string() }),
  errors: [],
});
const Explode = defineApi({
  method: 'test.Explode',
  service: ServiceName.VmRegistry,
  scope: DestScope.Dom0,
  summary: 'throws',
  payload: z.object({ how: z.enum(['bug', 'user']) }),
  reply: z.null(),
  errors: ['VM_NOT_FOUND'],
});
const Relay = defineApi({
  method: 'test.Relay',
  service: ServiceName.VmRegistry,
  scope: DestScope.Dom0,
  summary: 'calls Echo on',
  reply: z.object({ mine: z.string(), onward: z.string() }),
  errors: [],
});
const Forward = defineApi({
  method: 'test.Forward',
  service: ServiceName.VmRegistry,
  scope: DestScope.Dom0,
  summary: 'makes an onward call, well or badly',
  payload: z.enum(['malformed', 'missing-vm']),
  reply: z.null(),
  errors: ['VM_NOT_FOUND'],
});
const Nobody = defineApi({
  method: 'test.Nobody',
  service: ServiceName.Storage,
  scope: DestScope.Dom0,
  summary: 'served by no one',
  reply: z.null(),
  errors: [],
});

let nats: TestNats;
let server: Bus;
let client: Bus;
let service: BusService;
let serverLog: CapturedLog;

/** A raw request, bypassing the client library, as a hostile or broken client would send. */
async function rawRequest(subject: string, data: Uint8Array | string): Promise<{ status?: string; body: Record<string, unknown> }> {
  const reply = await client.nc.request(subject, data, { timeout: 5_000 });
  return { status: reply.headers?.get(SERVICE_ERROR_CODE_HEADER), body: reply.json() };
}

beforeAll(async () => {
  nats = await startNats();
  serverLog = captureLog('vm-registry');
  server = await connectBus({ url: nats.url, name: 'test-server', log: serverLog.log, mode: 'service' });
  client = await connectBus({ url: nats.url, name: 'test-client', log: captureLog('client').log, mode: 'tool' });
  service = await server.createService(ServiceName.VmRegistry, { version: '0.1.0', description: 'test' });
  service.serve(Echo, ({ payload }, ctx) => ({ text: payload.text.repeat(payload.count), dest: ctx.dest ?? '', reqId: ctx.reqId }));
  service.serve(Explode, ({ payload }) => {
    if (payload.how === 'user') throw new QubesError('VM_NOT_FOUND', 'no such domain: ghost');
    const data: Record<string, { deeper: string }> = {};
    return data['missing']!.deeper as unknown as null; // a genuine TypeError
  });
  service.serve(Forward, async ({ payload }, ctx) => {
    if (payload === 'malformed') await ctx.request(Echo, { payload: { text: 1 } } as never, { dest: 'work' });
    else await ctx.request(Explode, { payload: { how: 'user' } });
    return null;
  });
  service.serve(Relay, async (_req, ctx) => {
    const onward = await ctx.request(Echo, { payload: { text: '', count: 0 } }, { dest: 'work' });
    return { mine: ctx.reqId, onward: onward.reqId };
  });
});

afterAll(async () => {
  await client?.close();
  await service?.stop();
  await server?.close();
  await nats?.stop();
});

describe('serve() and request() over a real nats-server', () => {
  it('answers a valid request with the validated reply, decoding the destination VM', async () => {
    const reply = await client.request(Echo, { payload: { text: 'ab', count: 2 } }, { dest: 'my.work' });
    expect(reply).toMatchObject({ text: 'abab', dest: 'my.work' });
  });

  it('rejects a request failing validation with BAD_REQUEST naming the field', async () => {
    const err = await rejectionOf(
      client.request(Echo, { payload: { text: 'x', count: 'three' as unknown as number } }, { dest: 'work' }),
    );
    expect(err.code).toBe('BAD_REQUEST');
    expect(err.details?.['field']).toBe('payload.count');
    expect(err.message).toContain('payload.count');
  });

  it('rejects unknown fields and a missing payload as BAD_REQUEST naming them', async () => {
    const extra = await rejectionOf(
      client.request(Echo, { payload: { text: 'x', count: 1 }, extra: 1 } as never, { dest: 'work' }),
    );
    expect([extra.code, extra.details?.['field']]).toEqual(['BAD_REQUEST', 'extra']);
    const missing = await rejectionOf(client.request(Echo, {} as never, { dest: 'work' }));
    expect([missing.code, missing.details?.['field']]).toEqual(['BAD_REQUEST', 'payload']);
  });

  it('answers a handler that throws unexpectedly with INTERNAL, logs its stack, and keeps serving', async () => {
    const err = await rejectionOf(client.request(Explode, { payload: { how: 'bug' } }));
    expect(err.code).toBe('INTERNAL');
    expect(err.message).toMatch(/internal error in vm-registry .*request [A-Za-z0-9]+/);
    expect(err.message).not.toContain('deeper'); // no internals leak to the caller
    const logged = serverLog.lines().find((l) => l['msg'] === 'request failed unexpectedly');
    expect(logged?.['reqId']).toBe(err.details?.['reqId']);
    expect(String((logged?.['err'] as { stack?: string })?.stack)).toContain('TypeError');

    const next = await client.request(Echo, { payload: { text: 'still here', count: 1 } }, { dest: 'work' });
    expect(next.text).toBe('still here');
  });

  it('answers a malformed onward call as INTERNAL (a bug here), but passes an onward user error through', async () => {
    const malformed = await rejectionOf(client.request(Forward, { payload: 'malformed' }));
    expect(malformed.code).toBe('INTERNAL');
    expect(malformed.details?.['field']).toBeUndefined();
    const missing = await rejectionOf(client.request(Forward, { payload: 'missing-vm' }));
    expect([missing.code, missing.message]).toEqual(['VM_NOT_FOUND', 'no such domain: ghost']);
  });

  it('passes a user error through with its code and message', async () => {
    const err = await rejectionOf(client.request(Explode, { payload: { how: 'user' } }));
    expect([err.code, err.message]).toEqual(['VM_NOT_FOUND' satisfies ErrorCode, 'no such domain: ghost']);
  });

  it.each([
    ['a body that is not JSON', '{"payload": {', '(body)'],
    ['a JSON array', '[1,2,3]', '(body)'],
    ['a JSON number', '42', '(body)'],
    ['a payload of the wrong type', '{"payload": "text"}', 'payload'],
    ['an arg of the wrong type', '{"arg": 7, "payload": {"text": "x", "count": 1}}', 'arg'],
    ['bytes that are not UTF-8', new Uint8Array([0x7b, 0xff, 0xfe, 0x7d]), '(body)'],
  ])('answers %s with a BAD_REQUEST error reply', async (_what, data, field) => {
    const { status, body } = await rawRequest('qubes.api.work.test.Echo', data);
    expect(status).toBe('400');
    expect(body).toMatchObject({ code: 'BAD_REQUEST', details: { field } });
  });

  it('answers a 1 MiB payload with PAYLOAD_TOO_LARGE, and refuses one above the server limit before sending', async () => {
    const big = JSON.stringify({ payload: { text: 'x'.repeat(1024 * 1024), count: 1 } });
    const { status, body } = await rawRequest('qubes.api.work.test.Echo', big);
    expect(status).toBe('413');
    expect(body).toMatchObject({ code: 'PAYLOAD_TOO_LARGE', details: { limit: 256 * 1024 } });

    const typed = await rejectionOf(client.request(Echo, { payload: { text: 'x'.repeat(1024 * 1024), count: 1 } }, { dest: 'work' }));
    expect(typed.code).toBe('PAYLOAD_TOO_LARGE');
    const huge = await rejectionOf(client.request(Echo, { payload: { text: 'x'.repeat(10 * 1024 * 1024), count: 1 } }, { dest: 'work' }));
    expect(huge.code).toBe('PAYLOAD_TOO_LARGE');
    expect(huge.message).toContain('the bus takes at most');

    const after = await client.request(Echo, { payload: { text: 'ok', count: 1 } }, { dest: 'work' });
    expect(after.text).toBe('ok');
  });

  it('answers a destination that is not a VM name with VM_NAME_INVALID', async () => {
    const { status, body } = await rawRequest('qubes.api.9lives.test.Echo', '{"payload":{"text":"x","count":1}}');
    expect(status).toBe('400');
    expect(body['code']).toBe('VM_NAME_INVALID');
  });

  it('carries the request id in Qubes-Request-Id to the handler and on to onward calls', async () => {
    const reply = await client.request(Relay, {}, { reqId: 'trace-me-42' });
    expect(reply).toEqual({ mine: 'trace-me-42', onward: 'trace-me-42' });
    const raw = await client.nc.request('qubes.api.dom0.test.Explode', '{"payload": {"how": "bug"}}', {
      timeout: 5_000,
      headers: (() => {
        const h = natsHeaders();
        h.set('Qubes-Request-Id', 'from-header');
        return h;
      })(),
    });
    expect(raw.headers?.get('Qubes-Request-Id')).toBe('from-header'); // error replies carry it back
    expect(raw.json()).toMatchObject({ code: 'INTERNAL', details: { reqId: 'from-header' } });
    const lines = serverLog.lines().filter((l) => l['reqId'] === 'trace-me-42');
    expect(lines.map((l) => l['subject'])).toEqual(
      expect.arrayContaining(['qubes.api.dom0.test.Relay', 'qubes.api.work.test.Echo']),
    );
  });

  it('reports SERVICE_UNAVAILABLE naming the service when nothing serves the subject', async () => {
    const err = await rejectionOf(client.request(Nobody, {}));
    expect(err.code).toBe('SERVICE_UNAVAILABLE');
    expect(err.message).toContain('storage');
  });

  it('answers $SRV.PING, INFO and STATS as a NATS micro service', async () => {
    const svc = new Svcm(client.nc).client();
    const pings = [];
    for await (const p of await svc.ping('vm-registry')) pings.push(p);
    expect(pings.map((p) => p.name)).toEqual(['vm-registry']);

    const infos = [];
    for await (const i of await svc.info('vm-registry')) infos.push(i);
    expect(infos[0]?.endpoints.map((e) => [e.subject, e.queue_group])).toEqual(
      expect.arrayContaining([
        ['qubes.api.*.test.Echo', 'vm-registry'],
        ['qubes.api.dom0.test.Explode', 'vm-registry'],
      ]),
    );
    const stats = [];
    for await (const s of await svc.stats('vm-registry')) stats.push(s);
    const echo = stats[0]?.endpoints?.find((e) => e.subject === 'qubes.api.*.test.Echo');
    expect(echo?.num_requests).toBeGreaterThan(5);
  });

  it('on stop, answers the requests it has already taken before letting go', async () => {
    const other = await connectBus({ url: nats.url, name: 'stopping', log: captureLog('stopping').log, mode: 'service' });
    const otherService = await other.createService(ServiceName.VmRegistry, { version: '0.1.0', description: 'test' });
    const SlowOnly = defineApi({
      method: 'test.SlowOnly',
      service: ServiceName.VmRegistry,
      scope: DestScope.Dom0,
      summary: 'slow, on one instance',
      reply: z.literal('done'),
      errors: [],
    });
    otherService.serve(SlowOnly, async () => {
      await new Promise((resolve) => setTimeout(resolve, 300));
      return 'done' as const;
    });
    await other.nc.flush();
    const pending = client.request(SlowOnly, {});
    await new Promise((resolve) => setTimeout(resolve, 50)); // taken, not yet answered
    await otherService.stop();
    await other.close();
    expect(await pending).toBe('done');
  });

  it('spreads requests over the instances of one service (one queue group), each answered once', async () => {
    const second = await connectBus({ url: nats.url, name: 'second', log: captureLog('second').log, mode: 'service' });
    const secondService = await second.createService(ServiceName.VmRegistry, { version: '0.1.0', description: 'test' });
    const counts = { first: 0, second: 0 };
    const Count = defineApi({
      method: 'test.Count',
      service: ServiceName.VmRegistry,
      scope: DestScope.Dom0,
      summary: 'count',
      reply: z.string(),
      errors: [],
    });
    service.serve(Count, () => {
      counts.first++;
      return 'first';
    });
    secondService.serve(Count, () => {
      counts.second++;
      return 'second';
    });
    await server.nc.flush();
    await second.nc.flush();
    const replies = await Promise.all(Array.from({ length: 60 }, () => client.request(Count, {})));
    expect(counts.first + counts.second).toBe(60);
    expect(new Set(replies)).toEqual(new Set(['first', 'second']));
    await secondService.stop();
    await second.close();
  });
});
