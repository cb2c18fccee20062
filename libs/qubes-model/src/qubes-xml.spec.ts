import { describe, expect, it } from '@jest/globals';
import { isQubesError } from '@qubes-bus/contracts';
import { initialQubesXml, parseQubesXml, serializeQubesXml, summarizeDomains } from './qubes-xml';

const R4_SAMPLE = `<?xml version="1.0" encoding="utf-8" ?>
<qubes version="3.0">
  <properties>
    <property name="default_netvm">sys-firewall</property>
  </properties>
  <labels>
    <label id="label-1" color="0xcc0000">red</label>
    <label id="label-4" color="0x73d216">green</label>
  </labels>
  <pools>
    <pool driver="file" dir_path="/var/lib/qubes" name="default"/>
  </pools>
  <domains>
    <domain class="AdminVM" id="domain-0">
      <properties><property name="label" ref="label-1"/></properties>
    </domain>
    <domain class="AppVM" id="domain-3">
      <properties>
        <property name="qid">3</property>
        <property name="name">my.work</property>
        <property name="label" ref="label-4"/>
        <property name="template">fedora-40</property>
        <property name="uuid">1d6aab41-3262-400a-b3d3-21aae8fdbec8</property>
      </properties>
      <features><feature name="service.cups">1</feature></features>
      <tags><tag name="created-by-dom0"/></tags>
    </domain>
    <domain class="AppVM" id="domain-4">
      <properties>
        <property name="name">offline</property>
        <property name="label" ref="label-1"/>
        <property name="netvm"></property>
      </properties>
    </domain>
  </domains>
</qubes>
`;

describe('qubes.xml', () => {
  it('writes a new installation in the R4 <qubes> format: eight labels, pools, dom0 labelled black', () => {
    const text = serializeQubesXml(initialQubesXml('/var/lib/qubes'));
    expect(text).toContain('<label id="label-8" color="0x000000">black</label>');
    expect(text).toContain('<domain id="domain-0" class="AdminVM">');
    expect(text).toContain('<property name="label" ref="label-8"/>');
    expect(text).toContain('<pool name="varlibqubes" driver="file-reflink" dir_path="/var/lib/qubes" revisions_to_keep="1"/>');
    expect(parseQubesXml(text)).toEqual(initialQubesXml('/var/lib/qubes'));
    expect(serializeQubesXml(parseQubesXml(text))).toBe(text);
  });

  it('reads an R4 file and lists its domains with label names, template and netvm (explicit, empty, default)', () => {
    expect(summarizeDomains(parseQubesXml(R4_SAMPLE))).toEqual([
      { name: 'dom0', class: 'AdminVM', label: 'red', template: null, netvm: null },
      { name: 'my.work', class: 'AppVM', label: 'green', template: 'fedora-40', netvm: 'sys-firewall' },
      { name: 'offline', class: 'AppVM', label: 'red', template: null, netvm: null },
    ]);
    const work = parseQubesXml(R4_SAMPLE).domains[1];
    expect(work?.features).toEqual({ 'service.cups': '1' });
    expect(work?.tags).toEqual(['created-by-dom0']);
    expect(work?.properties['qid']).toEqual({ text: '3' }); // a string, not the number 3
  });

  it.each([
    ['a truncated file', R4_SAMPLE.slice(0, 400), /line \d+, column \d+/],
    ['an unclosed tag', '<qubes><domains></qubes>', /line 1, column \d+/],
    ['another root element', '<QubesVmCollection/>', /root element is not <qubes>/],
    ['an unknown VM class', '<qubes><domains><domain id="domain-1" class="EvilVM"/></domains></qubes>', /unknown class "EvilVM"/],
    ['an entity-defining DOCTYPE', '<!DOCTYPE q [<!ENTITY a "aaaa">]><qubes/>', /DOCTYPE is not allowed/],
  ])('refuses %s with STORE_MALFORMED saying where', (_what, text, message) => {
    let caught: unknown;
    try {
      parseQubesXml(text, '/var/lib/qubes/qubes.xml');
    } catch (err) {
      caught = err;
    }
    expect(isQubesError(caught, 'STORE_MALFORMED')).toBe(true);
    expect((caught as Error).message).toMatch(message);
    expect((caught as Error).message).toContain('/var/lib/qubes/qubes.xml');
  });
});
