/**
 * A plain-text table the way Qubes' tools print one (`column -t`): columns padded to their
 * widest cell, two spaces apart, no trailing blanks; an absent value is `-`.
 */
export function formatTable(head: readonly string[], rows: ReadonlyArray<ReadonlyArray<string | null>>): string {
  return alignColumns([head, ...rows.map((row) => row.map((cell) => (cell === null || cell === '' ? '-' : cell)))]);
}

/** Rows aligned in columns as they are (no head, no `-` for empty cells): `name  value` lists. */
export function alignColumns(rows: ReadonlyArray<ReadonlyArray<string>>): string {
  if (rows.length === 0) return '';
  const count = Math.max(...rows.map((row) => row.length));
  const widths = Array.from({ length: count }, (_, i) => Math.max(...rows.map((row) => (row[i] ?? '').length)));
  return rows
    .map((row) =>
      row
        .map((cell, i) => (i === row.length - 1 ? cell : cell.padEnd(widths[i] ?? 0)))
        .join('  ')
        .trimEnd(),
    )
    .join('\n')
    .concat('\n');
}
