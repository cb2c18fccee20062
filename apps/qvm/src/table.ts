/**
 * A plain-text table the way Qubes' tools print one (`column -t`): columns padded to their
 * widest cell, two spaces apart, no trailing blanks; an absent value is `-`.
 */
export function formatTable(head: readonly string[], rows: ReadonlyArray<ReadonlyArray<string | null>>): string {
  const cells = [head, ...rows.map((row) => row.map((cell) => (cell === null || cell === '' ? '-' : cell)))];
  const widths = head.map((_, i) => Math.max(...cells.map((row) => (row[i] ?? '').length)));
  return cells
    .map((row) =>
      row
        .map((cell, i) => (i === row.length - 1 ? cell : (cell ?? '').padEnd(widths[i] ?? 0)))
        .join('  ')
        .trimEnd(),
    )
    .join('\n')
    .concat('\n');
}
