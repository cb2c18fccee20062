import { describe, expect, it } from '@jest/globals';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { QubesError, type ErrorCode } from '@qubes-bus/contracts';
import type { QubesApp } from '../src/qubes-app';
import { loadQubesXml, serializeQubesXml } from '../src/qubes-xml';

const R4 = readFileSync(path.join(__dirname, 'fixtures/qubes-r4.xml'), 'utf8');
const fresh = (): QubesApp => loadQubesXml(R4, 'qubes.xml', 'e').app;

function refused(code: ErrorCode, fn: () => unknown): QubesError {
  let caught: unknown;
  try {
    fn();
  } catch (err) {
    caught = err;
  }
  expect(caught).toBeInstanceOf(QubesError);
  expect((caught as QubesError).code).toBe(code);
  return caught as QubesError;
}

describe('creating and removing VMs', () => {
  it('creates an AppVM on the default template, stored explicitly, with the smallest free qid', () => {
    const app = fresh();
    const { changes } = app.createDomain('AppVM', { name: 'personal', label: 'green' });
    expect(changes).toEqual([{ type: 'domain-add', vm: 'personal', class: 'AppVM' }]);
    const d = app.domain('personal');
    expect(d.qid).toBe(11);
    expect(d.props.get('template')).toEqual({ text: 'fedora-40-xfce' });
    expect(app.property('personal', 'uuid').value).toMatch(/^[0-9a-f-]{36}$/);
    expect(app.property('personal', 'netvm')).toEqual({ value: 'sys-firewall', default: true, type: 'vm' });
    expect(serializeQubesXml(app)).toContain('<domain id="domain-11" class="AppVM">');
  });

  it('creates a disposable from a disposable template, and refuses one from a plain AppVM', () => {
    const app = fresh();
    app.createDomain('DispVM', { name: 'disp42', label: 'red', template: 'default-dvm' });
    expect(Number(app.property('disp42', 'dispid').value)).toBeGreaterThan(0);
    expect(refused('TEMPLATE_CLASS_INVALID', () => app.createDomain('DispVM', { name: 'disp43', label: 'red', template: 'work' })).message).toMatch(
      /work is not a disposable template/,
    );
    expect(app.exists('disp43')).toBe(false);
  });

  it.each<[string, ErrorCode, () => unknown]>([
    ['an invalid name', 'VM_NAME_INVALID', () => fresh().createDomain('AppVM', { name: '9lives', label: 'red' })],
    ['a taken name', 'VM_ALREADY_EXISTS', () => fresh().createDomain('AppVM', { name: 'work', label: 'red' })],
    ['an unknown label', 'LABEL_NOT_FOUND', () => fresh().createDomain('AppVM', { name: 'x', label: 'pink' })],
    ['a template that is not a TemplateVM', 'TEMPLATE_CLASS_INVALID', () => fresh().createDomain('AppVM', { name: 'x', label: 'red', template: 'work' })],
    ['a template for a StandaloneVM', 'TEMPLATE_CLASS_INVALID', () => fresh().createDomain('StandaloneVM', { name: 'x', label: 'red', template: 'fedora-40-xfce' })],
    ['a second dom0', 'VM_CLASS_INVALID', () => fresh().createDomain('AdminVM', { name: 'x', label: 'red' })],
    ['a bad extra property', 'PROPERTY_TYPE_INVALID', () => fresh().createDomain('AppVM', { name: 'x', label: 'red', properties: { memory: 'lots' } })],
  ])('refuses %s, leaving nothing behind', (_what, code, create) => {
    refused(code, create);
  });

  it('refuses to remove a VM in use, naming every user, and dom0', () => {
    const app = fresh();
    const err = refused('VM_IN_USE', () => app.removeDomain('sys-firewall'));
    expect(err.details?.['usedBy']).toEqual(
      expect.arrayContaining([
        { vm: 'work', property: 'netvm' },
        { vm: 'default-dvm', property: 'netvm' },
        { vm: null, property: 'default_netvm' },
        { vm: null, property: 'updatevm' },
      ]),
    );
    expect(err.message).toContain('global default_netvm');
    refused('VM_IN_USE', () => app.removeDomain('fedora-40-xfce'));
    refused('VM_CLASS_INVALID', () => app.removeDomain('dom0'));
    refused('VM_NOT_FOUND', () => app.removeDomain('ghost'));
  });

  it('refuses, as Qubes does, to remove a VM a package installed or one that provides assigned devices', () => {
    const app = fresh();
    app.setProperty('debian-12-minimal', 'installed_by_rpm', true);
    expect(refused('VM_IN_USE', () => app.removeDomain('debian-12-minimal')).message).toMatch(/installed by the package manager/);
    const err = refused('VM_IN_USE', () => app.removeDomain('sys-usb'));
    expect(err.message).toBe('sys-usb provides devices assigned to work');
  });

  it('removes a VM nobody uses, and an undo puts it back where it was', () => {
    const app = fresh();
    const before = serializeQubesXml(app);
    const m = app.removeDomain('disp1234');
    expect(app.exists('disp1234')).toBe(false);
    m.undo();
    expect(serializeQubesXml(app)).toBe(before);
    expect([...app.domains.keys()].indexOf('disp1234')).toBe(9);
  });
});

describe('properties', () => {
  it('converts values typed as a user types them, and stores only what is set', () => {
    const app = fresh();
    app.setProperty('work', 'memory', '800');
    app.setProperty('work', 'debug', 'true');
    app.setProperty('work', 'virt_mode', 'HVM');
    expect(app.property('work', 'memory')).toEqual({ value: 800, default: false, type: 'int' });
    expect(app.property('work', 'debug').value).toBe(true);
    expect(app.property('work', 'virt_mode').value).toBe('hvm');
    app.resetProperty('work', 'memory');
    expect(app.property('work', 'memory')).toEqual({ value: 1024, default: true, type: 'int' });
    expect(app.domain('work').props.has('memory')).toBe(false);
  });

  it.each<[string, ErrorCode, (app: QubesApp) => unknown]>([
    ['an unknown property', 'PROPERTY_UNKNOWN', (a) => a.setProperty('work', 'colour', 'red')],
    ['a word for an integer', 'PROPERTY_TYPE_INVALID', (a) => a.setProperty('work', 'memory', 'lots')],
    ['a word for a boolean', 'PROPERTY_TYPE_INVALID', (a) => a.setProperty('work', 'autostart', 'maybe')],
    ['memory 0', 'PROPERTY_VALUE_INVALID', (a) => a.setProperty('work', 'memory', 0)],
    ['a netvm that provides no network', 'PROPERTY_VALUE_INVALID', (a) => a.setProperty('work', 'netvm', 'sys-usb')],
    ['a netvm that does not exist', 'PROPERTY_VALUE_INVALID', (a) => a.setProperty('work', 'netvm', 'sys-nett')],
    ['a netvm loop', 'NETVM_LOOP', (a) => a.setProperty('sys-net', 'netvm', 'sys-firewall')],
    ['a netvm of itself', 'NETVM_LOOP', (a) => a.setProperty('sys-firewall', 'netvm', 'sys-firewall')],
    ['a template that is an AppVM', 'TEMPLATE_CLASS_INVALID', (a) => a.setProperty('work', 'template', 'sys-net')],
    ['a default_template that is an AppVM', 'TEMPLATE_CLASS_INVALID', (a) => a.setProperty(null, 'default_template', 'work')],
    ['a new name', 'PROPERTY_READ_ONLY', (a) => a.setProperty('work', 'name', 'play')],
    ['a new qid', 'PROPERTY_READ_ONLY', (a) => a.setProperty('work', 'qid', 99)],
    ['a reset uuid', 'PROPERTY_READ_ONLY', (a) => a.resetProperty('work', 'uuid')],
    ['a computed property', 'PROPERTY_READ_ONLY', (a) => a.setProperty('work', 'updateable', true)],
    ['a reset label', 'PROPERTY_VALUE_INVALID', (a) => a.resetProperty('work', 'label')],
    ['a label that does not exist', 'LABEL_NOT_FOUND', (a) => a.setProperty('work', 'label', 'pink')],
    ['no network from a netvm still in use', 'PROPERTY_VALUE_INVALID', (a) => a.setProperty('sys-net', 'provides_network', false)],
    ['a default_dispvm that is no disposable template', 'PROPERTY_VALUE_INVALID', (a) => a.setProperty('work', 'default_dispvm', 'sys-net')],
    ['a line break in text', 'PROPERTY_VALUE_INVALID', (a) => a.setProperty('work', 'kernelopts', 'a\nb')],
    ['a control character in text', 'PROPERTY_VALUE_INVALID', (a) => a.setProperty('work', 'kernelopts', 'a\u001bb')],
    ['a default kernel that is a path', 'PROPERTY_VALUE_INVALID', (a) => a.setProperty(null, 'default_kernel', '../../../etc')],
    ['a pool that does not exist', 'PROPERTY_VALUE_INVALID', (a) => a.setProperty(null, 'default_pool', 'nowhere')],
  ])('refuses %s and changes nothing', (_what, code, act) => {
    const app = fresh();
    const before = serializeQubesXml(app);
    const revision = app.revision('work');
    refused(code, () => act(app));
    expect(serializeQubesXml(app)).toBe(before);
    expect(app.revision('work')).toBe(revision);
  });

  it('refuses, as Qubes does, a default netvm that itself follows the default: a loop', () => {
    const app = fresh();
    expect(refused('NETVM_LOOP', () => app.resetProperty('sys-firewall', 'netvm')).message).toMatch(/sys-firewall -> sys-firewall/);
    app.setProperty('sys-usb', 'provides_network', true);
    app.resetProperty('sys-usb', 'netvm'); // sys-usb -> sys-firewall -> sys-net
    const err = refused('NETVM_LOOP', () => app.setProperty(null, 'default_netvm', 'sys-usb'));
    expect(err.message).toMatch(/sys-usb -> sys-usb/);
    expect(app.property(null, 'default_netvm').value).toBe('sys-firewall');
  });

  it('tells the VMs whose defaults moved: a template change resets their values and bumps their revisions', () => {
    const app = fresh();
    const workRevision = app.revision('work');
    const { changes } = app.setProperty('fedora-40-xfce', 'vcpus', 4);
    expect(changes).toEqual(
      expect.arrayContaining([
        { type: 'property-set', vm: 'fedora-40-xfce', name: 'vcpus', newvalue: 4, oldvalue: 2 },
        { type: 'property-reset', vm: 'work', name: 'vcpus', newvalue: 4, oldvalue: 2 },
        { type: 'property-reset', vm: 'disp1234', name: 'vcpus', newvalue: 4, oldvalue: 2 }, // through default-dvm
      ]),
    );
    expect(app.revision('work')).not.toBe(workRevision);
    refused('CONFLICT', () => app.checkRevision('work', workRevision));
    const sysNetRevision = app.revision('sys-net');
    const global = app.setProperty(null, 'default_netvm', 'sys-net');
    expect(global.changes).toContainEqual({ type: 'property-reset', vm: 'work', name: 'netvm', newvalue: 'sys-net', oldvalue: 'sys-firewall' });
    expect(global.changes.some((c) => c.type === 'property-reset' && c.vm === 'sys-net')).toBe(false); // sys-net sets its own
    expect(app.revision('sys-net')).toBe(sysNetRevision);
  });

  it('reports a change with old and new value, bumps the revision, and an undo takes both back', () => {
    const app = fresh();
    const revision = app.revision('work');
    const m = app.setProperty('work', 'netvm', 'sys-net');
    expect(m.changes).toEqual([{ type: 'property-set', vm: 'work', name: 'netvm', newvalue: 'sys-net', oldvalue: 'sys-firewall' }]);
    expect(app.revision('work')).not.toBe(revision);
    refused('CONFLICT', () => app.checkRevision('work', revision));
    const changed = app.revision('work');
    m.undo();
    // revisions never go back: neither the undone change's nor the one before it is current
    expect([revision, changed]).not.toContain(app.revision('work'));
    expect(app.property('work', 'netvm')).toEqual({ value: 'sys-firewall', default: true, type: 'vm' });
    expect(app.setProperty('work', 'label', 'blue').changes).toEqual([]); // already so: nothing to do
  });

  it('writes what is in memory after a change and after its undo (the per-VM render cache follows)', () => {
    const app = fresh();
    const before = serializeQubesXml(app);
    const m = app.setProperty('work', 'memory', 1500);
    expect(serializeQubesXml(app)).toContain('<property name="memory">1500</property>');
    m.undo();
    expect(serializeQubesXml(app)).toBe(before);
    app.setProperty('work', 'memory', 1600); // same revision as the undone change, other value
    expect(serializeQubesXml(app)).toContain('<property name="memory">1600</property>');
    expect(serializeQubesXml(app)).not.toContain('1500');
  });

  it('gives the default a property falls back to, and its doc', () => {
    const app = fresh();
    expect(app.defaultOf('work', 'memory')).toEqual({ value: 1024, type: 'int' });
    expect(app.defaultOf('work', 'label')).toBeNull();
    expect(app.def('work', 'netvm').doc).toMatch(/provides network/);
    expect(app.propertyNames('work')).toEqual(expect.arrayContaining(['name', 'qid', 'template', 'netvm', 'template_for_dispvms']));
    expect(app.propertyNames('dom0')).not.toContain('netvm');
  });
});

describe('features, tags and labels', () => {
  it('sets, reads and removes features, and looks them up through the template and netvm', () => {
    const app = fresh();
    expect(app.setFeature('work', 'service.cups', '').changes).toEqual([
      { type: 'feature-set', vm: 'work', feature: 'service.cups', value: '', oldvalue: '1' },
    ]);
    expect(app.featureVia('work', 'os-distribution', 'template')).toBe('fedora');
    expect(app.featureVia('work', 'service.clocksync', 'netvm')).toBe('1'); // from sys-net, via sys-firewall
    refused('FEATURE_NOT_FOUND', () => app.featureVia('work', 'nope', 'template'));
    app.removeFeature('work', 'menu-items');
    refused('FEATURE_NOT_FOUND', () => app.removeFeature('work', 'menu-items'));
  });

  it('adds and removes tags', () => {
    const app = fresh();
    expect(app.addTag('work', 'audited').changes).toEqual([{ type: 'tag-add', vm: 'work', tag: 'audited' }]);
    expect(app.addTag('work', 'audited').changes).toEqual([]);
    app.removeTag('work', 'audited');
    refused('TAG_NOT_FOUND', () => app.removeTag('work', 'audited'));
  });

  it('creates labels above the eight built-in ones, and removes only unused, non-built-in ones', () => {
    const app = fresh();
    expect(app.createLabel('teal', '0x008080').changes).toEqual([{ type: 'label-add', label: 'teal', color: '0x008080', index: 10 }]);
    refused('LABEL_EXISTS', () => app.createLabel('teal', '0x008081'));
    refused('LABEL_IN_USE', () => app.removeLabel('red'));
    expect(refused('LABEL_IN_USE', () => app.removeLabel('magenta')).details?.['usedBy']).toEqual(['win10.legacy']);
    app.removeLabel('teal');
    refused('LABEL_NOT_FOUND', () => app.removeLabel('teal'));
  });
});
