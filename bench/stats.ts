/** Small helpers shared by the benchmarks: timing, percentiles, a printed table. */

/** Runs `call` sequentially `count` times after `warmup` unrecorded runs; returns ms each. */
export async function timeMany(call: () => Promise<void>, count: number, warmup = 0): Promise<number[]> {
  for (let i = 0; i < warmup; i++) await call();
  const times = new Array<number>(count);
  for (let i = 0; i < count; i++) {
    const started = performance.now();
    await call();
    times[i] = performance.now() - started;
  }
  return times;
}

/** Nearest-rank percentile. */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}

export function ratio(measured: number, baseline: number): string {
  return `${(measured / baseline).toFixed(2)}x`;
}

export function printTable(title: string, rows: string[][]): void {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  console.log(`\n${title}`);
  for (const row of rows) console.log(row.map((cell, i) => (i === 0 ? cell.padEnd(widths[i]!) : cell.padStart(widths[i]!))).join('   '));
}
