import { UsageError } from './errors';

const UNITS: Readonly<Record<string, number>> = {
  '': 1,
  k: 1024, kib: 1024, kb: 1000,
  m: 1024 ** 2, mib: 1024 ** 2, mb: 1000 ** 2,
  g: 1024 ** 3, gib: 1024 ** 3, gb: 1000 ** 3,
  t: 1024 ** 4, tib: 1024 ** 4, tb: 1000 ** 4,
};

/** A size as Qubes' tools take one (qubesadmin/utils.py parse_size): `10G`, `10GiB` (binary), `10GB` (decimal), bytes. */
export function parseSize(untrusted: string): number {
  const match = /^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$/.exec(untrusted);
  const unit = match === null ? undefined : UNITS[match[2]!.toLowerCase()];
  if (match === null || unit === undefined) throw new UsageError(`not a size: ${JSON.stringify(untrusted)} (say 10G, 512MiB, 2GB or bytes)`);
  const bytes = Math.round(Number(match[1]) * unit);
  if (!Number.isSafeInteger(bytes)) throw new UsageError(`the size ${untrusted} is too large`);
  return bytes;
}

/** Bytes as a person reads them: 2.0 GiB, 512 MiB. */
export function formatSize(bytes: number): string {
  for (const [unit, size] of [['TiB', 1024 ** 4], ['GiB', 1024 ** 3], ['MiB', 1024 ** 2], ['KiB', 1024]] as const) {
    if (bytes >= size) return `${(bytes / size).toFixed(bytes % size === 0 ? 0 : 1)} ${unit}`;
  }
  return `${bytes} B`;
}
