import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { buildBundles, startStack, tool, watch, type Stack, type Watching } from './harness';

let stack: Stack;
const watchers: Watching[] = [];

beforeAll(async () => {
  await buildBundles();
  stack = await startStack();
  const created = await tool('qvm-create', ['-C', 'TemplateVM', '-l', 'black', 'work'], stack.env);
  if (created.code !== 0) throw new Error(created.stderr);
}, 60_000);

afterAll(async () => {
  for (const w of watchers) await w.stop('SIGKILL');
  await stack?.stop();
});

function events(...args: string[]): Watching {
  const w = watch('qvm-events', args, stack.env);
  watchers.push(w);
  return w;
}

/**
 * Sets work's memory until the watcher prints: qvm-events prints events from the moment its
 * subscription stands, which a test cannot see from outside. Returns the first line printed
 * and the memory values set so far.
 */
async function setMemoryUntilPrinted(watcher: Watching): Promise<{ line: string; values: number[] }> {
  const values: number[] = [];
  for (let memory = 500; memory < 600; memory++) {
    const set = await tool('qvm-prefs', ['work', 'memory', String(memory)], stack.env);
    if (set.code !== 0) throw new Error(set.stderr);
    values.push(memory);
    const line = await watcher.nextLine(500).catch(() => undefined);
    if (line !== undefined) return { line, values };
  }
  throw new Error(`qvm-events printed nothing (stderr: ${watcher.stderr()})`);
}

describe('qvm-events', () => {
  it('prints, as JSON with its stream seq, the property-set event a qvm-prefs caused, and exits 0 on SIGTERM', async () => {
    const watcher = events('--json', 'work');
    const { line, values } = await setMemoryUntilPrinted(watcher);
    const event = JSON.parse(line) as Record<string, unknown>;
    expect(event).toMatchObject({ vm: 'work', event: 'property-set:memory', name: 'memory', subject: 'qubes.vm.work.property-set.memory' });
    expect(values).toContain(event['newvalue']);
    expect(event['seq']).toEqual(expect.any(Number));
    expect(await watcher.stop('SIGTERM')).toBe(0);
    expect(watcher.stderr()).toBe('');
  });

  it('resumes after a sequence with --from-seq, printing for people the events it missed, and exits 0 on SIGINT', async () => {
    const first = events('--json');
    const { line } = await setMemoryUntilPrinted(first);
    expect(await first.stop('SIGINT')).toBe(0);
    // The last event it printed (a slow start may have let it print more than one).
    const seq = Math.max(...[line, ...first.takeRest()].map((l) => (JSON.parse(l) as { seq: number }).seq));

    // Changes made while nobody watches...
    expect((await tool('qvm-prefs', ['work', 'memory', '700'], stack.env)).code).toBe(0);
    expect((await tool('qvm-tags', ['work', 'add', 'resumed'], stack.env)).code).toBe(0);
    // ...are printed by the next watcher that resumes after the last sequence seen.
    const resumed = events('--from-seq', String(seq), 'work');
    expect(await resumed.nextLine()).toMatch(/^work property-set:memory name=memory newvalue=700 oldvalue=\d+ revision=\S+$/);
    expect(await resumed.nextLine()).toMatch(/^work domain-tag-add:resumed tag=resumed revision=\S+$/);
    expect(await resumed.stop('SIGINT')).toBe(0);
    expect(resumed.stderr()).toBe('');
  });

  it('prints events of the system (global properties) with --all, - standing for the VM', async () => {
    const watcher = events('--all');
    for (let timeout = 61; ; timeout++) {
      expect((await tool('qubes-prefs', ['default_qrexec_timeout', String(timeout)], stack.env)).code).toBe(0);
      const line = await watcher.nextLine(500).catch(() => undefined);
      if (line === undefined) continue;
      expect(line).toMatch(new RegExp(`^- property-set:default_qrexec_timeout name=default_qrexec_timeout newvalue=${timeout} oldvalue=\\d+ revision=\\S+$`));
      break;
    }
    expect(await watcher.stop()).toBe(0);
  });
});
