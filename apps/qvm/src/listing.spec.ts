import { describe, expect, it } from '@jest/globals';
import type { PropertyEntry, VmSummary } from '@qubes-bus/contracts';
import {
  buildListing,
  columnFor,
  formatColumns,
  formatFlags,
  formatHelpFormats,
  formatListing,
  formatRawListing,
  matchesPowerStates,
  neededProperties,
  parseFields,
} from './listing';
import { UsageError } from './errors';

const int = (value: number | null): PropertyEntry => ({ value, default: true, type: 'int' });

function vm(name: string, extra: Partial<VmSummary> = {}): VmSummary {
  return { name, class: 'AppVM', state: 'Halted', label: 'red', template: 'fedora', netvm: 'sys-net', revision: 'r1', ...extra };
}

const dom0 = vm('dom0', { class: 'AdminVM', state: 'Running', label: 'black', template: null, netvm: null });
const fedora = vm('fedora', { class: 'TemplateVM', label: 'black', template: null, netvm: null });
const sysNet = vm('sys-net', {
  netvm: null,
  properties: { ip: { value: '10.137.0.2', default: true, type: 'ip' }, qid: int(2), provides_network: { value: true, default: false, type: 'bool' } },
});
const work = vm('work', { label: 'blue', properties: { ip: { value: '10.137.0.10', default: true, type: 'ip' }, qid: int(10) } });

describe('qvm-ls columns', () => {
  it('names columns as Qubes does: virt_mode, virt-mode and VIRT-MODE are the VIRT-MODE column of the virt_mode property', () => {
    for (const name of ['virt_mode', 'virt-mode', 'VIRT-MODE']) {
      expect(columnFor(name)).toMatchObject({ head: 'VIRT-MODE', properties: ['virt_mode'] });
    }
    expect(columnFor('name').properties).toEqual([]);
    expect(() => columnFor('na me')).toThrow(UsageError);
  });

  it("asks admin.vm.List for no property in the simple format, and for exactly the full and network formats' ones", () => {
    expect(neededProperties(formatColumns('simple'))).toEqual([]);
    expect(neededProperties(formatColumns('full'))).toEqual(['qid', 'uuid']);
    // IPBACK is not an R4 property: it shows '-' rather than being asked for; GATEWAY needs ip too.
    expect(neededProperties(formatColumns('network'))).toEqual(['ip']);
    expect(neededProperties(parseFields('name,FLAGS,memory,maxmem'))).toEqual([
      'virt_mode', 'updateable', 'provides_network', 'installed_by_rpm', 'debug', 'autostart', 'maxmem',
    ]);
    expect(() => formatColumns('perf')).toThrow(/no such format: "perf"; the formats are simple, network/);
    expect(() => parseFields(' , ')).toThrow(UsageError);
  });

  it('prints the simple format like column -t, sorted by name, with - for absent values', () => {
    expect(formatListing(buildListing([work, dom0, fedora], formatColumns('simple')))).toBe(
      [
        'NAME    STATE    CLASS       LABEL  TEMPLATE  NETVM',
        'dom0    Running  AdminVM     black  -         -',
        'fedora  Halted   TemplateVM  black  -         -',
        'work    Halted   AppVM       blue   fedora    sys-net',
        '',
      ].join('\n'),
    );
  });

  it("shows a VM's gateway as its netvm's address, and - for columns with no data here (XID, IPBACK)", () => {
    const listing = buildListing([work], formatColumns('network'), { others: [sysNet, work] });
    expect(listing.rows).toEqual([['work', 'Halted', 'sys-net', '10.137.0.10', null, '10.137.0.2']]);
    expect(buildListing([dom0], formatColumns('full')).rows[0]).toEqual(['dom0', 'Running', 'AdminVM', 'black', null, null, null]);
  });

  it('sorts integer columns by number and text columns by text, keeping name order among equals, also reversed', () => {
    const vms = [vm('b', { properties: { qid: int(10) } }), vm('a', { properties: { qid: int(9) } }), vm('c', { properties: { qid: int(10) } })];
    const names = (sort: string, reverse = false): string[] =>
      buildListing(vms, parseFields('name,qid,label'), { sort, reverse }).rows.map((r) => r[0] ?? '');
    expect(names('qid')).toEqual(['a', 'b', 'c']);
    expect(names('QID', true)).toEqual(['b', 'c', 'a']);
    expect(names('name', true)).toEqual(['c', 'b', 'a']);
    expect(names('label')).toEqual(['a', 'b', 'c']);
    expect(() => names('memory')).toThrow('cannot sort by MEMORY: it is not one of the columns shown (NAME, QID, LABEL)');
    // Without NAME among the columns, the default order is still by name.
    expect(buildListing(vms, parseFields('label'), { reverse: true }).rows).toHaveLength(3);
  });

  it('prints --raw-data rows joined by | with no head, - for absent values', () => {
    expect(formatRawListing(buildListing([work, dom0], parseFields('name,class,template')))).toBe('dom0|AdminVM|-\nwork|AppVM|fedora\n');
  });

  it("prints FLAGS as Qubes: type (upper case for HVM), power state, then U N R i D A", () => {
    expect(formatFlags(dom0)).toBe('0r------');
    expect(formatFlags(sysNet)).toBe('a--N----');
    const hvm = vm('win', {
      class: 'StandaloneVM',
      state: 'Paused',
      properties: {
        virt_mode: { value: 'hvm', default: false, type: 'enum' },
        updateable: { value: true, default: true, type: 'bool' },
        debug: { value: true, default: false, type: 'bool' },
        autostart: { value: true, default: false, type: 'bool' },
      },
    });
    expect(formatFlags(hvm)).toBe('SpU---DA');
  });

  it('keeps every VM when no power state is asked for, else those in one of them', () => {
    expect(matchesPowerStates(dom0, [])).toBe(true);
    expect(matchesPowerStates(dom0, ['running'])).toBe(true);
    expect(matchesPowerStates(work, ['running', 'paused'])).toBe(false);
  });

  it('lists the formats with their columns for --help-formats', () => {
    expect(formatHelpFormats()).toContain('  full     NAME,STATE,CLASS,LABEL,QID,XID,UUID\n');
  });
});
