import { describe, expect, it } from '@jest/globals';
import { formatTable } from './table';

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
});
