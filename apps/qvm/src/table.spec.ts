import { describe, expect, it } from '@jest/globals';
import { alignColumns, formatTable } from './table';

describe('formatTable', () => {
  it('pads columns to the widest cell, two spaces apart, with - for absent values and no trailing blanks', () => {
    expect(
      formatTable(
        ['NAME', 'STATE', 'NETVM'],
        [
          ['dom0', 'Running', null],
          ['sys-firewall', 'Halted', 'sys-net'],
          ['work', 'Halted', ''],
        ],
      ),
    ).toBe(
      ['NAME          STATE    NETVM', 'dom0          Running  -', 'sys-firewall  Halted   sys-net', 'work          Halted   -', ''].join('\n'),
    );
  });

  it('prints only the head when there are no rows', () => {
    expect(formatTable(['NAME', 'STATE'], [])).toBe('NAME  STATE\n');
  });
});

describe('alignColumns', () => {
  it('aligns name/value rows with no head and keeps empty values empty', () => {
    expect(alignColumns([['gui', '1'], ['service.cups', ''], ['menu-items', 'a b']])).toBe('gui           1\nservice.cups\nmenu-items    a b\n');
    expect(alignColumns([])).toBe('');
  });
});
