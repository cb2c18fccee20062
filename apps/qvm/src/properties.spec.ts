import { describe, expect, it } from '@jest/globals';
import type { PropertyEntry } from '@qubes-bus/contracts';
import { formatPropertyHelp, formatPropertyList, formatPropertyValue, propertyName, valueToSet, wrapWords } from './properties';

const entry = (value: PropertyEntry['value'], type: PropertyEntry['type'], isDefault = true): PropertyEntry => ({ value, default: isDefault, type });

describe('qvm-prefs output', () => {
  it('lists properties sorted, D for defaults and - for set ones, None for no VM, U alone for an int without value', () => {
    const listing = formatPropertyList({
      netvm: entry(null, 'vm', false),
      memory: entry(800, 'int', false),
      autostart: entry(false, 'bool'),
      backup_timestamp: entry(null, 'int'),
      kernel: entry(null, 'str'),
      label: entry('red', 'label', false),
    });
    expect(listing).toBe(
      [
        'autostart         D  False',
        'backup_timestamp  U',
        'kernel            D',
        'label             -  red',
        'memory            -  800',
        'netvm             -  None',
        '',
      ].join('\n'),
    );
  });

  it('leaves out the defaults with --hide-default, aligned as the whole list (as Qubes)', () => {
    expect(formatPropertyList({ memory: entry(400, 'int'), vcpus: entry(4, 'int', false) }, { hideDefault: true })).toBe('vcpus   -  4\n');
  });

  it('prints one value as Qubes: nothing for no VM, an empty line for an empty string, True/False for booleans', () => {
    expect(formatPropertyValue(entry('sys-net', 'vm'))).toBe('sys-net\n');
    expect(formatPropertyValue(entry(null, 'vm'))).toBeNull();
    expect(formatPropertyValue(entry(null, 'int'))).toBeNull();
    expect(formatPropertyValue(entry('', 'str'))).toBe('\n');
    expect(formatPropertyValue(entry(true, 'bool'))).toBe('True\n');
    expect(formatPropertyValue(entry(400, 'int'))).toBe('400\n');
  });

  it('takes none for "no VM" on VM references only, and - for _ in property names', () => {
    expect(valueToSet('netvm', 'None')).toBe('');
    expect(valueToSet('default_netvm', 'none')).toBe('');
    expect(valueToSet('default_user', 'none')).toBe('none');
    expect(propertyName('virt-mode')).toBe('virt_mode');
  });

  it('prints --help-properties as name and doc, the doc wrapped at 80 columns under itself', () => {
    const doc = 'Kernel the VM boots (a directory of the linux-kernel pool); none: the one inside the VM, as it was installed there.';
    const text = formatPropertyHelp({ kernel: doc, qid: 'Internal identifier.' });
    const lines = text.trimEnd().split('\n');
    expect(lines[0]).toMatch(/^ {2}kernel {2}Kernel the VM boots/);
    expect(lines[1]).toMatch(/^ {10}\S/);
    expect(lines.at(-1)).toBe('  qid     Internal identifier.');
    expect(lines.every((line) => line.length <= 80)).toBe(true);
    expect(wrapWords('a bb ccc', 4)).toEqual(['a bb', 'ccc']);
  });
});
