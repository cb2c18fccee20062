import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { Bus } from '@qubes-bus/bus';
import {
  AdminLabel,
  AdminProperty,
  AdminVmclassList,
  AdminVmCreate,
  AdminVmFeature,
  AdminVmList,
  AdminVmProperty,
  AdminVmRemove,
  AdminVmTag,
  Subjects,
  type ErrorCode,
} from '@qubes-bus/contracts';
import { collectEvents, rejectionOf, startUnderTest, type UnderTest } from '@qubes-bus/testing';
import { createRegistry, type RegistryService } from '../src/service';

let underTest: UnderTest<RegistryService>;
let client: Bus;
let qubesXml: string;

const onDisk = (): string => readFileSync(qubesXml, 'utf8');

beforeAll(async () => {
  underTest = await startUnderTest('vm-registry', ({ bus, log, dataDir }) => createRegistry({ bus, log, dataDir }));
  client = underTest.client;
  qubesXml = path.join(underTest.dataDir, 'qubes.xml');
  // A small installation: a template, a network chain, a disposable template, a work VM.
  await client.request(AdminVmCreate.TemplateVM, { payload: { name: 'fedora-40', label: 'black' } });
  await client.request(AdminProperty.Set, { arg: 'default_template', payload: { value: 'fedora-40' } });
  await client.request(AdminVmCreate.AppVM, { payload: { name: 'sys-net', label: 'red', properties: { provides_network: true, netvm: '' } } });
  await client.request(AdminVmCreate.AppVM, {
    payload: { name: 'sys-firewall', label: 'green', properties: { provides_network: 'True', netvm: 'sys-net' } },
  });
  await client.request(AdminProperty.Set, { arg: 'default_netvm', payload: { value: 'sys-firewall' } });
  await client.request(AdminVmCreate.AppVM, { payload: { name: 'work', label: 'blue' } });
});

afterAll(async () => {
  await underTest?.stop();
});

describe('the Admin API of the vm-registry', () => {
  it('lists VM classes and VMs, with any properties asked for in the same round trip', async () => {
    expect((await client.request(AdminVmclassList, {})).classes).toEqual(['AdminVM', 'AppVM', 'DispVM', 'StandaloneVM', 'TemplateVM']);
    const { domains } = await client.request(AdminVmList, { payload: { properties: ['memory', 'provides_network'] } });
    const work = domains.find((d) => d.name === 'work');
    expect(work).toMatchObject({ class: 'AppVM', state: 'Halted', label: 'blue', template: 'fedora-40', netvm: 'sys-firewall' });
    expect(work?.properties).toEqual({
      memory: { value: 400, default: true, type: 'int' },
      provides_network: { value: false, default: true, type: 'bool' },
    });
    expect(domains.find((d) => d.name === 'dom0')?.properties).toEqual({}); // dom0 has neither
  });

  it('creates a VM, stores it on disk before answering, and publishes domain-add', async () => {
    const events = await client.subscribe(Subjects.vmEvents('personal'));
    const created = await client.request(AdminVmCreate.AppVM, {
      arg: 'fedora-40',
      payload: { name: 'personal', label: 'purple', properties: { memory: '800', vcpus: 1 } },
    });
    expect(created).toMatchObject({ name: 'personal', qid: expect.any(Number), uuid: expect.stringMatching(/^[0-9a-f-]{36}$/) });
    expect(onDisk()).toContain(`<domain id="domain-${created.qid}" class="AppVM">`);
    expect(onDisk()).toContain('<property name="memory">800</property>');
    const [added] = await collectEvents(events, 1);
    expect(added?.message).toMatchObject({ vm: 'personal', event: 'domain-add', class: 'AppVM', revision: created.revision });
    await events.stop();
  });

  it('gets, sets and resets properties, publishing property-set and property-reset with old and new values', async () => {
    const events = await client.subscribe('qubes.vm.work.>');
    const before = await client.request(AdminVmProperty.Get, { arg: 'netvm' }, { dest: 'work' });
    expect(before).toMatchObject({ name: 'netvm', value: 'sys-firewall', default: true, type: 'vm' });
    const set = await client.request(AdminVmProperty.Set, { arg: 'netvm', payload: { value: 'sys-net' } }, { dest: 'work' });
    expect(onDisk()).toMatch(/<property name="name">work<\/property>[\s\S]*<property name="netvm">sys-net<\/property>/);
    const reset = await client.request(AdminVmProperty.Reset, { arg: 'netvm' }, { dest: 'work' });
    expect(reset.revision).not.toBe(set.revision);
    const seen = await collectEvents(events, 2);
    expect(seen.map((e) => e.subject)).toEqual(['qubes.vm.work.property-set.netvm', 'qubes.vm.work.property-reset.netvm']);
    expect(seen[0]?.message).toMatchObject({ name: 'netvm', newvalue: 'sys-net', oldvalue: 'sys-firewall', revision: set.revision });
    expect(seen[1]?.message).toMatchObject({ name: 'netvm', newvalue: 'sys-firewall', oldvalue: 'sys-net', revision: reset.revision });
    await events.stop();

    expect(await client.request(AdminVmProperty.GetDefault, { arg: 'memory' }, { dest: 'work' })).toEqual({ value: 400, type: 'int' });
    expect((await client.request(AdminVmProperty.Help, { arg: 'memory' }, { dest: 'work' })).doc).toMatch(/Memory/);
    const all = await client.request(AdminVmProperty.GetAll, {}, { dest: 'work' });
    expect(all.properties['template']).toEqual({ value: 'fedora-40', default: false, type: 'vm' });
    expect((await client.request(AdminVmProperty.List, {}, { dest: 'work' })).properties).toContain('kernelopts');
  });

  it('refuses a write carrying a stale revision with CONFLICT and the current revision', async () => {
    const { revision } = await client.request(AdminVmProperty.Get, { arg: 'memory' }, { dest: 'work' });
    const next = await client.request(AdminVmProperty.Set, { arg: 'memory', payload: { value: 600, revision } }, { dest: 'work' });
    const stale = await rejectionOf(client.request(AdminVmProperty.Set, { arg: 'memory', payload: { value: 700, revision } }, { dest: 'work' }));
    expect(stale.code).toBe('CONFLICT');
    expect(stale.details?.['revision']).toBe(next.revision);
    expect((await client.request(AdminVmProperty.Get, { arg: 'memory' }, { dest: 'work' })).value).toBe(600);
  });

  it('sets global properties, publishing on qubes.app', async () => {
    const events = await client.subscribe('qubes.app.>');
    await client.request(AdminProperty.Set, { arg: 'default_qrexec_timeout', payload: { value: '90' } });
    expect((await client.request(AdminVmProperty.Get, { arg: 'qrexec_timeout' }, { dest: 'work' })).value).toBe(90);
    const [event] = await collectEvents(events, 1);
    expect(event?.subject).toBe('qubes.app.property-set.default_qrexec_timeout');
    await events.stop();
  });

  it('keeps features and tags, and looks features up through the template', async () => {
    await client.request(AdminVmFeature.Set, { arg: 'os-distribution', payload: { value: 'fedora' } }, { dest: 'fedora-40' });
    await client.request(AdminVmFeature.Set, { arg: 'service.cups', payload: { value: '1' } }, { dest: 'work' });
    expect((await client.request(AdminVmFeature.List, {}, { dest: 'work' })).features).toEqual({ 'service.cups': '1' });
    expect(await client.request(AdminVmFeature.CheckWithTemplate, { arg: 'os-distribution' }, { dest: 'work' })).toEqual({ value: 'fedora' });
    await client.request(AdminVmFeature.Remove, { arg: 'service.cups' }, { dest: 'work' });
    expect((await rejectionOf(client.request(AdminVmFeature.Get, { arg: 'service.cups' }, { dest: 'work' }))).code).toBe('FEATURE_NOT_FOUND');

    await client.request(AdminVmTag.Set, { arg: 'audited' }, { dest: 'work' });
    expect((await client.request(AdminVmTag.List, {}, { dest: 'work' })).tags).toEqual(['audited']);
    expect(await client.request(AdminVmTag.Get, { arg: 'audited' }, { dest: 'work' })).toEqual({ present: true });
    await client.request(AdminVmTag.Remove, { arg: 'audited' }, { dest: 'work' });
    expect(onDisk()).not.toContain('audited');
  });

  it('manages labels', async () => {
    await client.request(AdminLabel.Create, { arg: 'teal', payload: '0x008080' });
    expect(await client.request(AdminLabel.Index, { arg: 'teal' })).toEqual({ index: 9 });
    expect((await client.request(AdminLabel.List, {})).labels.map((l) => l.name)).toContain('teal');
    expect(onDisk()).toContain('<label id="label-9" color="0x008080">teal</label>');
    await client.request(AdminLabel.Remove, { arg: 'teal' });
    expect((await rejectionOf(client.request(AdminLabel.Get, { arg: 'teal' }))).code).toBe('LABEL_NOT_FOUND');
  });

  it('removes a VM nobody uses, and refuses one in use, naming its users', async () => {
    const inUse = await rejectionOf(client.request(AdminVmRemove, {}, { dest: 'fedora-40' }));
    expect(inUse.code).toBe('VM_IN_USE');
    expect(inUse.message).toMatch(/sys-net \(template\).*global default_template/);
    await client.request(AdminVmRemove, {}, { dest: 'personal' });
    expect(onDisk()).not.toContain('<property name="name">personal</property>');
    expect((await rejectionOf(client.request(AdminVmList, {}, { dest: 'personal' }))).code).toBe('VM_NOT_FOUND');
  });

  describe('refuses bad input with its own error code, leaving qubes.xml byte for byte as it was', () => {
    const cases: Array<[string, ErrorCode, () => Promise<unknown>]> = [
      ['an invalid VM name', 'VM_NAME_INVALID', () => client.request(AdminVmCreate.AppVM, { payload: { name: '9lives', label: 'red' } })],
      ['a name taken already', 'VM_ALREADY_EXISTS', () => client.request(AdminVmCreate.AppVM, { payload: { name: 'work', label: 'red' } })],
      ['an unknown property', 'PROPERTY_UNKNOWN', () => client.request(AdminVmProperty.Set, { arg: 'colour', payload: { value: 'red' } }, { dest: 'work' })],
      ['a value of the wrong type', 'PROPERTY_TYPE_INVALID', () => client.request(AdminVmProperty.Set, { arg: 'memory', payload: { value: 'lots' } }, { dest: 'work' })],
      ['a netvm loop', 'NETVM_LOOP', () => client.request(AdminVmProperty.Set, { arg: 'netvm', payload: { value: 'sys-firewall' } }, { dest: 'sys-net' })],
      ['a netvm that provides no network', 'PROPERTY_VALUE_INVALID', () => client.request(AdminVmProperty.Set, { arg: 'netvm', payload: { value: 'work' } }, { dest: 'sys-net' })],
      ['a template of the wrong class', 'TEMPLATE_CLASS_INVALID', () => client.request(AdminVmProperty.Set, { arg: 'template', payload: { value: 'sys-net' } }, { dest: 'work' })],
      ['a rename', 'PROPERTY_READ_ONLY', () => client.request(AdminVmProperty.Set, { arg: 'name', payload: { value: 'play' } }, { dest: 'work' })],
      ['removing a VM in use', 'VM_IN_USE', () => client.request(AdminVmRemove, {}, { dest: 'sys-firewall' })],
      ['removing dom0', 'VM_CLASS_INVALID', () => client.request(AdminVmRemove, {}, { dest: 'dom0' })],
      ['an unknown VM', 'VM_NOT_FOUND', () => client.request(AdminVmProperty.Set, { arg: 'memory', payload: { value: 1 } }, { dest: 'ghost' })],
      ['a 10 MiB payload', 'PAYLOAD_TOO_LARGE', () => client.request(AdminVmFeature.Set, { arg: 'x', payload: { value: 'x'.repeat(10 * 1024 * 1024) } }, { dest: 'work' })],
      ['a 1 MiB payload', 'PAYLOAD_TOO_LARGE', () => client.request(AdminVmFeature.Set, { arg: 'x', payload: { value: 'x'.repeat(1024 * 1024) } }, { dest: 'work' })],
      ['a feature value with a line break', 'BAD_REQUEST', () => client.request(AdminVmFeature.Set, { arg: 'x', payload: { value: 'a\nb' } }, { dest: 'work' })],
      ['an unknown label', 'LABEL_NOT_FOUND', () => client.request(AdminVmProperty.Set, { arg: 'label', payload: { value: 'pink' } }, { dest: 'work' })],
    ];
    it.each(cases)('%s: %s', async (_what, code, call) => {
      const before = onDisk();
      expect((await rejectionOf(call())).code).toBe(code);
      expect(onDisk()).toBe(before);
    });
  });

  it('never overwrites a qubes.xml edited from outside: the write is refused, the edit stays', async () => {
    const edited = onDisk().replace('<property name="memory">600</property>', '<property name="memory">1234</property>');
    writeFileSync(qubesXml, edited);
    const refused = await rejectionOf(client.request(AdminVmProperty.Set, { arg: 'vcpus', payload: { value: 3 } }, { dest: 'work' }));
    expect(refused.code).toBe('STORE_MODIFIED_EXTERNALLY');
    expect(onDisk()).toBe(edited);
    // and the refused change was not kept in memory either
    expect((await client.request(AdminVmProperty.Get, { arg: 'vcpus' }, { dest: 'work' })).default).toBe(true);
    expect((await rejectionOf(client.request(AdminVmTag.Set, { arg: 'again' }, { dest: 'work' }))).code).toBe('STORE_MODIFIED_EXTERNALLY');
    expect(onDisk()).toBe(edited);
  });
});
