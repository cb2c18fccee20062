import type { HostInfoReply, PropertyValue, VmSummary } from '@qubes-bus/contracts';
import { formatTable } from './table';
import { UsageError } from './errors';

/**
 * The columns and formats of qvm-ls (qubesadmin/tools/qvm_ls.py). A column is named by its head
 * (`VIRT-MODE`); any head that is not one of the columns below is the VM property of that name
 * (`virt_mode`), as in Qubes. Every property a listing needs is asked for in the one
 * `admin.vm.List` call.
 */
export interface Column {
  readonly head: string;
  /** The properties the column needs from `admin.vm.List`. */
  readonly properties: readonly string[];
  /** Sorts by number rather than by text. */
  readonly numeric: boolean;
  cell(vm: VmSummary, all: ReadonlyMap<string, VmSummary>): string | null;
}

/** Qubes' preset formats. */
export const FORMATS = {
  simple: ['name', 'state', 'class', 'label', 'template', 'netvm'],
  network: ['name', 'state', 'netvm', 'ip', 'ipback', 'gateway'],
  kernel: ['name', 'state', 'class', 'template', 'kernel', 'kernelopts'],
  full: ['name', 'state', 'class', 'label', 'qid', 'xid', 'uuid'],
  prefs: ['name', 'label', 'template', 'netvm', 'vcpus', 'initialmem', 'maxmem', 'virt_mode'],
  disk: ['name', 'state', 'disk', 'priv-curr', 'priv-max', 'priv-used', 'root-curr', 'root-max', 'root-used'],
} as const satisfies Record<string, readonly string[]>;
export type FormatName = keyof typeof FORMATS;

/** Columns Qubes sorts by number (qvm_ls.py SORT_NUMERIC); int properties sort so too. */
const NUMERIC_HEADS: ReadonlySet<string> = new Set([
  'MEMORY', 'DISK', 'PRIV-CURR', 'PRIV-MAX', 'ROOT-CURR', 'XID', 'ROOT-MAX', 'MAXMEM',
  'QREXEC-TIMEOUT', 'SHUTDOWN-TIMEOUT', 'VCPUS', 'PRIV-USED', 'ROOT-USED',
]);

/**
 * Columns whose data lives outside the registry: the hypervisor's (domain id, memory in use),
 * the storage service's (volume sizes and pools), and properties R4 no longer has (`ipback`,
 * `initialmem`, still in Qubes' `network` and `prefs` formats). They show `-`, as Qubes shows a
 * value it cannot get.
 */
const UNAVAILABLE: ReadonlySet<string> = new Set([
  'XID', 'MEMORY', 'DISK', 'IPBACK', 'INITIALMEM',
  'PRIV-CURR', 'PRIV-MAX', 'PRIV-POOL', 'PRIV-USED', 'ROOT-CURR', 'ROOT-MAX', 'ROOT-POOL', 'ROOT-USED',
]);

/** The FLAGS column: type, power state, then one letter per property when it holds. */
const FLAG_PROPERTIES = ['virt_mode', 'updateable', 'provides_network', 'installed_by_rpm', 'debug', 'autostart'] as const;
const CLASS_LETTERS: Readonly<Record<string, string>> = { AdminVM: '0', TemplateVM: 't', AppVM: 'a', StandaloneVM: 's', DispVM: 'd' };
const POWER_LETTERS: ReadonlySet<string> = new Set(['running', 'transient', 'paused', 'suspended', 'halting', 'dying', 'crashed']);

/** A property value as Qubes prints it in a table: `True`/`False`, numbers, names; null when absent. */
export function cellText(value: PropertyValue | undefined): string | null {
  if (value === undefined || value === null || value === '') return null;
  if (typeof value === 'boolean') return value ? 'True' : 'False';
  return String(value);
}

function propertyOf(vm: VmSummary, property: string): PropertyValue | undefined {
  return vm.properties?.[property]?.value;
}

export function formatFlags(vm: VmSummary): string {
  let type = CLASS_LETTERS[vm.class] ?? '-';
  if (type !== '0' && type !== '-' && propertyOf(vm, 'virt_mode') === 'hvm') type = type.toUpperCase();
  const state = vm.state.toLowerCase();
  const power = state === 'na' ? '?' : POWER_LETTERS.has(state) ? state[0]! : '-';
  const flag = (property: string, letter: string): string => (propertyOf(vm, property) === true ? letter : '-');
  // `i` (the `internal` feature) would cost a call per VM: features are not part of the list.
  return `${type}${power}${flag('updateable', 'U')}${flag('provides_network', 'N')}${flag('installed_by_rpm', 'R')}-${flag('debug', 'D')}${flag('autostart', 'A')}`;
}

function column(head: string, properties: readonly string[], cell: Column['cell'], numeric = NUMERIC_HEADS.has(head)): Column {
  return { head, properties, numeric, cell };
}

const FIXED: ReadonlyMap<string, Column> = new Map(
  [
    column('NAME', [], (vm) => vm.name),
    column('STATE', [], (vm) => vm.state),
    column('CLASS', [], (vm) => vm.class),
    column('LABEL', [], (vm) => vm.label),
    column('TEMPLATE', [], (vm) => vm.template),
    column('NETVM', [], (vm) => vm.netvm),
    column('FLAGS', FLAG_PROPERTIES, formatFlags),
    // Qubes: netvm.gateway, which a VM that provides network sets to its own address.
    column('GATEWAY', ['ip'], (vm, all) => (vm.netvm === null ? null : cellText(propertyOf(all.get(vm.netvm) ?? vm, 'ip')))),
  ].map((c) => [c.head, c]),
);

/** `virt_mode`, `VIRT-MODE` and `virt-mode` all name the column `VIRT-MODE`. */
export function columnHead(untrustedName: string): string {
  return untrustedName.trim().toUpperCase().replace(/_/g, '-');
}

/** The column of a name given on the command line (`--fields`, `--sort`). */
export function columnFor(untrustedName: string): Column {
  const head = columnHead(untrustedName);
  const fixed = FIXED.get(head);
  if (fixed !== undefined) return fixed;
  if (UNAVAILABLE.has(head)) return column(head, [], () => null);
  const property = head.toLowerCase().replace(/-/g, '_');
  if (!/^[a-z_][a-z0-9_]{0,63}$/.test(property)) throw new UsageError(`${JSON.stringify(untrustedName)} is not a column`);
  return column(head, [property], (vm) => cellText(propertyOf(vm, property)));
}

/** The columns of `--fields a,b,c`. */
export function parseFields(untrustedFields: string): Column[] {
  const names = untrustedFields.split(',').filter((name) => name.trim() !== '');
  if (names.length === 0) throw new UsageError('--fields needs at least one column');
  return names.map(columnFor);
}

export function formatColumns(format: string): Column[] {
  if (!Object.hasOwn(FORMATS, format)) {
    throw new UsageError(`no such format: ${JSON.stringify(format)}; the formats are ${Object.keys(FORMATS).join(', ')}`);
  }
  return FORMATS[format as FormatName].map(columnFor);
}

/** Every property the columns need, each once: what to ask `admin.vm.List` for. */
export function neededProperties(columns: readonly Column[]): string[] {
  return [...new Set(columns.flatMap((c) => c.properties))];
}

export interface ListingOptions {
  /** A column head or name; it must be one of the listing's columns. */
  sort?: string;
  reverse?: boolean;
  /** VMs not listed that columns may look up (GATEWAY: the netvm's address). */
  others?: readonly VmSummary[];
}

function byText(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Qubes sorts a numeric column by its number, `-` and other text counting as 0. */
function asNumber(cell: string): number {
  const digits = cell.endsWith('%') ? cell.slice(0, -1) : cell;
  return /^-?\d+$/.test(digits) ? Number(digits) : 0;
}

/** Whether a column sorts by number: Qubes' numeric columns, and integer properties. */
function sortsNumerically(col: Column, vms: readonly VmSummary[]): boolean {
  if (col.numeric) return true;
  const [property] = col.properties;
  return col.properties.length === 1 && property !== undefined && vms.some((vm) => vm.properties?.[property]?.type === 'int');
}

export interface Listing {
  head: string[];
  rows: Array<Array<string | null>>;
}

/**
 * The rows of a listing: by name first (as Qubes), then stably by the `sort` column, by number
 * for numeric columns. `reverse` reverses the order but, as Python's `sorted(reverse=True)`
 * that Qubes uses, keeps rows of equal keys in name order.
 * Deviations: Qubes ignores a `--sort` column that is not shown, and `--sort` with
 * `--raw-data`; here the first is a usage error and raw data is sorted too.
 */
export function buildListing(vms: readonly VmSummary[], columns: readonly Column[], options: ListingOptions = {}): Listing {
  const all = new Map([...(options.others ?? []), ...vms].map((vm) => [vm.name, vm]));
  const head = columns.map((c) => c.head);
  const sortHead = columnHead(options.sort ?? 'NAME');
  const index = head.indexOf(sortHead);
  if (index === -1 && options.sort !== undefined) {
    throw new UsageError(`cannot sort by ${sortHead}: it is not one of the columns shown (${head.join(', ')})`);
  }
  const sign = options.reverse ? -1 : 1;
  const rows = [...vms]
    .sort((a, b) => byText(a.name, b.name) * (index === -1 ? sign : 1))
    .map((vm) => columns.map((c) => c.cell(vm, all)));
  if (index !== -1) {
    const numeric = sortsNumerically(columns[index]!, vms);
    const key = (cells: ReadonlyArray<string | null>): string => cells[index] ?? '-';
    const compare = numeric
      ? (a: ReadonlyArray<string | null>, b: ReadonlyArray<string | null>) => asNumber(key(a)) - asNumber(key(b))
      : (a: ReadonlyArray<string | null>, b: ReadonlyArray<string | null>) => byText(key(a), key(b));
    rows.sort((a, b) => compare(a, b) * sign);
  }
  return { head, rows };
}

/** The listing as a table with a head line (`-` for absent values). */
export function formatListing(listing: Listing): string {
  return formatTable(listing.head, listing.rows);
}

/** `--raw-data`: one line per VM, cells joined by `|`, no head; `-` for absent values. */
export function formatRawListing(listing: Listing): string {
  return listing.rows.map((row) => `${row.map((cell) => (cell === null || cell === '' ? '-' : cell)).join('|')}\n`).join('');
}

/** `--running`, `--halted`, `--paused`: VMs in any of the states asked for; all when none is. */
export function matchesPowerStates(vm: VmSummary, states: readonly string[]): boolean {
  return states.length === 0 || states.includes(vm.state.toLowerCase());
}

/** `--help-formats`, as Qubes prints it. */
export function formatHelpFormats(): string {
  const names = Object.keys(FORMATS).sort() as FormatName[];
  const width = Math.max(...names.map((n) => n.length));
  return `Available formats:\n${names.map((n) => `  ${n.padEnd(width)}  ${FORMATS[n].join(',').toUpperCase()}\n`).join('')}`;
}

/**
 * `qvm-ls --host`: the host as one row, memory in MiB, CPU% with one decimal (`-` until the
 * registry has read the host twice: the load is measured between two readings).
 */
export function hostListing(host: HostInfoReply): Listing {
  const mib = (kib: number): string => String(Math.floor(kib / 1024));
  return {
    head: ['HOST', 'CPUS', 'CPU%', 'MEMORY', 'FREE', 'RUNNING'],
    rows: [[host.hostname, String(host.cpus), host.cpu_usage === null ? null : host.cpu_usage.toFixed(1), mib(host.memory_total), mib(host.memory_free), String(host.running)]],
  };
}
