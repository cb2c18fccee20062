import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { connectBus, type Bus } from '@qubes-bus/bus';
import { AdminVmCreate, AdminVmFeature, isQubesError } from '@qubes-bus/contracts';
import { loadQubesXml } from '@qubes-bus/qubes-model';
import { captureLog, startUnderTest, type UnderTest } from '@qubes-bus/testing';
import { createRegistry, type RegistryService } from '../src/service';

const CLIENTS = 16;
const CHANGES = 200;

let underTest: UnderTest<RegistryService>;
const clients: Bus[] = [];

beforeAll(async () => {
  underTest = await startUnderTest('vm-registry', ({ bus, log, dataDir }) => createRegistry({ bus, log, dataDir }), {
    log: captureLog('vm-registry', 'warn'),
  });
  const { nats } = underTest;
  for (let i = 0; i < CLIENTS; i++) {
    clients.push(await connectBus({ url: nats.url, name: `client-${i}`, log: captureLog(`client-${i}`, 'warn').log, mode: 'tool' }));
  }
  await clients[0]!.request(AdminVmCreate.StandaloneVM, { payload: { name: 'work', label: 'blue' } });
});

afterAll(async () => {
  for (const c of clients) await c.close();
  await underTest?.stop();
});

/** Read, add one, write back carrying the revision read; on CONFLICT read again. */
async function increment(client: Bus): Promise<number> {
  for (let attempt = 1; ; attempt++) {
    const { features, revision } = await client.request(AdminVmFeature.List, {}, { dest: 'work' });
    const next = Number(features['counter'] ?? '0') + 1;
    try {
      await client.request(AdminVmFeature.Set, { arg: 'counter', payload: { value: String(next), revision } }, { dest: 'work' });
      return attempt;
    } catch (err) {
      if (!isQubesError(err, 'CONFLICT')) throw err;
    }
  }
}

describe('concurrent clients', () => {
  it(`${CLIENTS} clients making ${CHANGES} read-modify-write changes each, with revision checks and retries, lose no update`, async () => {
    const attempts = await Promise.all(
      clients.map(async (client, i) => {
        let tries = 0;
        for (let n = 1; n <= CHANGES; n++) {
          tries += await increment(client);
          // and a change of its own, unconditional, to the same VM
          await client.request(AdminVmFeature.Set, { arg: `client-${i}`, payload: { value: String(n) } }, { dest: 'work' });
        }
        return tries;
      }),
    );
    const total = CLIENTS * CHANGES;
    const { features } = await clients[0]!.request(AdminVmFeature.List, {}, { dest: 'work' });
    expect(features['counter']).toBe(String(total));
    for (let i = 0; i < CLIENTS; i++) expect(features[`client-${i}`]).toBe(String(CHANGES));
    // the revisions really were contended: some writes had to be retried
    expect(attempts.reduce((a, b) => a + b, 0)).toBeGreaterThan(total);
    // and what was acknowledged is on disk
    const { app } = loadQubesXml(readFileSync(path.join(underTest.dataDir, 'qubes.xml'), 'utf8'));
    expect(app.feature('work', 'counter')).toBe(String(total));
  }, 180_000);
});
