import { describe, expect, it } from '@jest/globals';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { isQubesError } from '@qubes-bus/contracts';
import { initialQubesApp, loadQubesXml, serializeQubesXml } from '../src/qubes-xml';
import { isElement, parseXml, type XmlElement } from '../src/xml-tree';

const R4 = readFileSync(path.join(__dirname, 'fixtures/qubes-r4.xml'), 'utf8');
const R3 = readFileSync(path.join(__dirname, 'fixtures/qubes-r3.xml'), 'utf8');

/** Every element as path + attributes + own text: what "nothing lost" compares. */
function signatures(root: XmlElement): string[] {
  const out: string[] = [];
  const walk = (el: XmlElement, at: string): void => {
    const attrs = Object.entries(el.attrs).sort(([a], [b]) => a.localeCompare(b));
    // device assignments and volume config are kept raw: compared exactly, whitespace and all
    const text = el.children.some(isElement)
      ? el.children.map((c) => ('text' in c ? c.text.trim() : '')).join('')
      : el.children.map((c) => ('text' in c ? c.text : 'raw' in c ? c.raw : '')).join('');
    const here = `${at}/${el.name}`;
    out.push(`${here} ${JSON.stringify(attrs)} ${JSON.stringify(text)}`);
    for (const child of el.children) {
      if (isElement(child)) walk(child, here);
      else if ('comment' in child) out.push(`${here} <!--${child.comment}-->`);
    }
  };
  walk(root, '');
  return out.sort();
}

function store(text: string): XmlElement {
  return parseXml(text, { path: 'x', root: ['qubes'] });
}

describe('qubes.xml in the R4 format', () => {
  it('writes a new installation as Qubes does: eight labels, pools, dom0 labelled black', () => {
    const text = serializeQubesXml(initialQubesApp('/var/lib/qubes', 'e'));
    expect(text).toMatch(/^<\?xml version='1.0' encoding='UTF-8'\?>\n<qubes>\n  <labels>\n    <label id="label-1" color="0xcc0000">red<\/label>/);
    expect(text).toContain('<pool dir_path="/var/lib/qubes" driver="file-reflink" name="varlibqubes" revisions_to_keep="1"/>');
    expect(text).toContain('<domain id="domain-0" class="AdminVM">\n      <properties>\n        <property name="label" ref="label-8"/>');
    expect(serializeQubesXml(loadQubesXml(text).app)).toBe(text);
  });

  it('loads and saves a realistic R4 qubes.xml with nothing lost', () => {
    const { app, convertedFromR3 } = loadQubesXml(R4, '/var/lib/qubes/qubes.xml');
    expect(convertedFromR3).toBe(false);
    const saved = serializeQubesXml(app);
    // every element, attribute and text of the original is in what was written
    expect(signatures(store(saved))).toEqual(signatures(store(R4)));
    // and writing is stable
    expect(serializeQubesXml(loadQubesXml(saved).app)).toBe(saved);
  });

  it('keeps text exactly: spaces, quotes and markup characters in a kernel command line', () => {
    const { app } = loadQubesXml(R4);
    expect(app.property('work', 'kernelopts')).toEqual({ value: '  nopat  quiet & "more" </cmdline> ', default: false, type: 'str' });
    const saved = serializeQubesXml(app);
    expect(saved).toContain('<property name="kernelopts">  nopat  quiet &amp; "more" &lt;/cmdline&gt; </property>');
    expect(saved).toContain('<setting key="a">mixed <b>content</b> kept</setting>');
    expect(saved).toContain('<domain id="domain-6" class="AppVM" x-origin="salt">');
    expect(saved).toContain('<x-site-policy owner="it">keep me</x-site-policy>');
    expect(saved).toContain('<property name="bootmode">default</property>'); // a property this code does not model
    expect(saved).toContain('<property name="default_dispvm" origin="policy">default-dvm</property>');
    expect(saved).toContain('<domains generation="42">');
    expect(saved).toContain('<!-- managed by salt: do not edit by hand -->');
    expect(app.property('work', 'default_user').value).toBe('worker@corp'); // a character reference, decoded
  });

  it('reads values by type, with defaults from the template and from global properties', () => {
    const { app } = loadQubesXml(R4);
    expect(app.property('sys-net', 'netvm')).toEqual({ value: null, default: false, type: 'vm' });
    expect(app.property('work', 'netvm')).toEqual({ value: 'sys-firewall', default: true, type: 'vm' });
    expect(app.property('work', 'memory')).toEqual({ value: 1024, default: true, type: 'int' }); // the template's
    expect(app.property('work', 'label')).toEqual({ value: 'blue', default: false, type: 'label' });
    expect(app.property('win10.legacy', 'kernel')).toEqual({ value: null, default: false, type: 'str' });
    expect(app.property('disp1234', 'include_in_backups')).toEqual({ value: false, default: true, type: 'bool' });
    expect(app.property('work', 'ip')).toEqual({ value: '10.137.0.6', default: true, type: 'ip' });
    expect(app.property(null, 'default_pool')).toEqual({ value: 'vm-pool', default: false, type: 'str' });
    expect(app.property(null, 'default_pool_private')).toEqual({ value: 'vm-pool', default: true, type: 'str' });
    expect(app.property('fedora-40-xfce', 'netvm')).toEqual({ value: null, default: true, type: 'vm' });
    expect([...app.domain('fedora-40-xfce').features]).toContainEqual(['updates-available', '']);
  });
});

describe('qubes.xml in the R3 format (QubesVmCollection)', () => {
  const { app, convertedFromR3 } = loadQubesXml(R3, '/var/lib/qubes/qubes.xml', 'e');
  const value = (vm: string | null, p: string) => app.property(vm, p);

  it('is recognised and converted', () => {
    expect(convertedFromR3).toBe(true);
    expect([...app.domains.keys()].sort()).toEqual(['dom0', 'fedora-23', 'fedora-23-dvm', 'sys-firewall', 'sys-net', 'vault', 'win7', 'work']);
    expect(app.domain('sys-net').qid).toBe(2); // qids are kept
  });

  it('turns VM classes into R4 ones: templates, template-based AppVMs, StandaloneVMs, network providers', () => {
    expect(app.domain('fedora-23').klass).toBe('TemplateVM');
    expect(app.domain('sys-net').klass).toBe('AppVM');
    expect(app.domain('win7').klass).toBe('StandaloneVM');
    expect(value('sys-net', 'template').value).toBe('fedora-23');
    expect(value('sys-net', 'provides_network').value).toBe(true);
    expect(value('sys-firewall', 'provides_network').value).toBe(true);
    expect(value('work', 'provides_network')).toEqual({ value: false, default: true, type: 'bool' });
    expect(value('win7', 'virt_mode').value).toBe('hvm');
    expect(value('work', 'virt_mode').value).toBe('pv');
  });

  it('turns qids into names, and gives a proxy that followed default_fw_netvm that one explicitly', () => {
    expect(value(null, 'default_netvm').value).toBe('sys-firewall');
    expect(value(null, 'default_template').value).toBe('fedora-23');
    expect(value(null, 'clockvm').value).toBe('sys-net');
    expect(value(null, 'updatevm').value).toBe('sys-firewall');
    expect(value(null, 'default_kernel').value).toBe('4.4.14-11');
    expect(value('sys-net', 'netvm')).toEqual({ value: null, default: false, type: 'vm' });
    expect(value('sys-firewall', 'netvm')).toEqual({ value: 'sys-net', default: false, type: 'vm' });
    expect(value('work', 'netvm')).toEqual({ value: 'sys-firewall', default: true, type: 'vm' });
    expect(value('vault', 'netvm')).toEqual({ value: null, default: false, type: 'vm' });
    expect(value('win7', 'netvm')).toEqual({ value: 'sys-firewall', default: false, type: 'vm' });
  });

  it('keeps non-default attributes only, and services, PCI devices and backup data as R4 has them', () => {
    expect(value('sys-net', 'memory')).toEqual({ value: 300, default: false, type: 'int' });
    expect(value('work', 'memory')).toEqual({ value: 400, default: true, type: 'int' });
    expect(value('win7', 'qrexec_timeout')).toEqual({ value: 300, default: false, type: 'int' });
    expect(value('win7', 'autostart').value).toBe(true);
    expect(value('fedora-23', 'kernelopts')).toEqual({ value: 'nopat', default: false, type: 'str' });
    expect(value('fedora-23', 'installed_by_rpm').value).toBe(true);
    expect(value('work', 'label').value).toBe('blue');
    expect(Object.fromEntries(app.domain('sys-net').features)).toEqual({ 'service.ntpd': '1', 'service.meminfo-writer': '' });
    expect(Object.fromEntries(app.domain('work').features)).toEqual({
      'service.cups': '1',
      'service.qubes-update-check': '',
      'backup-content': 'True',
      'backup-path': 'appvms/work',
      'backup-size': '1048576',
    });
    expect(app.domain('fedora-23-dvm').features.get('internal')).toBe('1');
    const saved = serializeQubesXml(app);
    expect(saved).toContain(
      '<devices class="pci">\n        <device backend-domain="dom0" id="00_19.0">\n          <option name="no-strict-reset">True</option>\n        </device>',
    );
    expect(saved).toContain('<pool dir_path="/var/lib/qubes" driver="file" name="varlibqubes" revisions_to_keep="1"/>');
    // and what it wrote reads back the same
    expect(serializeQubesXml(loadQubesXml(saved, 'x', 'e').app)).toBe(saved);
  });
});

describe('malformed stores', () => {
  it.each([
    ['a truncated file', R4.slice(0, 900), /line \d+, column \d+/],
    ['an unclosed tag', '<qubes><domains></qubes>', /line 1, column \d+/],
    ['another root element', '<Qubes/>', /root element is not <qubes> or <QubesVmCollection>/],
    ['an unknown VM class', '<qubes><domains><domain id="domain-1" class="EvilVM"/></domains></qubes>', /unknown class "EvilVM"/],
    ['an entity-defining DOCTYPE', '<!DOCTYPE q [<!ENTITY a "aaaa">]><qubes/>', /DOCTYPE is not allowed/],
    ['a memory that is not a number', R4.replace('<property name="memory">425</property>', '<property name="memory">lots</property>'), /sys-net: property memory: "lots" is not an integer/],
    ['a netvm naming no VM', R4.replace('<property name="netvm">sys-net</property>', '<property name="netvm">sys-nett</property>'), /sys-firewall: property netvm: no VM is named sys-nett/],
    ['a VM name breaking the rules', R4.replace('<property name="name">work</property>', '<property name="name">../../etc</property>'), /"..\/..\/etc": a VM name cannot start/],
    ['a template that is an AppVM', R4.replace('<property name="template">default-dvm</property>', '<property name="template">sys-net</property>'), /disp1234: template sys-net is a AppVM|sys-net is not a disposable/],
    ['an AppVM on an AppVM', R4.replace('<property name="name">work</property>\n        <property name="uuid">6f2a6b8d-1d72-4c9f-8b2d-3c1b5f7a8b55</property>\n        <property name="label" ref="label-6"/>\n        <property name="template">fedora-40-xfce</property>', '<property name="name">work</property>\n        <property name="uuid">6f2a6b8d-1d72-4c9f-8b2d-3c1b5f7a8b55</property>\n        <property name="label" ref="label-6"/>\n        <property name="template">sys-usb</property>'), /work: template sys-usb is a AppVM/],
    ['a netvm that provides no network', R4.replace('<property name="netvm">sys-net</property>', '<property name="netvm">sys-usb</property>'), /sys-firewall: netvm sys-usb does not provide network/],
    ['a netvm loop', R4.replace('<property name="netvm"></property>\n        <property name="virt_mode">hvm</property>\n        <property name="memory">425</property>', '<property name="netvm">sys-firewall</property>\n        <property name="virt_mode">hvm</property>\n        <property name="memory">425</property>'), /netvm loop .*sys-net -> sys-firewall -> sys-net|netvm loop .*sys-firewall -> sys-net -> sys-firewall/],
    ['two VMs with one qid', R4.replace('id="domain-10"', 'id="domain-9"').replace('<property name="qid">10</property>', '<property name="qid">9</property>'), /two domains have qid 9/],
    ['a qid that disagrees with the domain id', R4.replace('id="domain-10"', 'id="domain-11"'), /domain-11 says qid 10/],
  ])('refuses %s with STORE_MALFORMED saying where', (_what, text, message) => {
    let caught: unknown;
    try {
      loadQubesXml(text, '/var/lib/qubes/qubes.xml');
    } catch (err) {
      caught = err;
    }
    expect(isQubesError(caught, 'STORE_MALFORMED')).toBe(true);
    expect((caught as Error).message).toMatch(message);
    expect((caught as Error).message).toContain('/var/lib/qubes/qubes.xml');
  });
});
