import type { PropertyEntry } from '@qubes-bus/contracts';

/**
 * How qvm-prefs and qubes-prefs print properties (qubesadmin/tools/qvm_prefs.py, with the
 * values as qubesadmin decodes them: a VM or label reference that is empty is None, an empty
 * int or bool is no value at all).
 */

/** Properties naming a VM, where Qubes' qvm-prefs takes `none` (any case) for "no VM". */
const VM_REFERENCES: ReadonlySet<string> = new Set([
  'netvm', 'template', 'default_dispvm', 'management_dispvm', 'guivm', 'audiovm',
  'default_netvm', 'default_template', 'updatevm', 'clockvm', 'default_guivm', 'default_audiovm',
]);

/** The value to send for `qvm-prefs VM PROPERTY VALUE`: `none` means no VM for VM references. */
export function valueToSet(property: string, untrustedValue: string): string {
  return VM_REFERENCES.has(property) && untrustedValue.toLowerCase() === 'none' ? '' : untrustedValue;
}

/** `qvm-prefs VM netvm` and friends: `-` in a property name is `_`, as in Qubes. */
export function propertyName(untrustedName: string): string {
  return untrustedName.replace(/-/g, '_');
}

function hasNoValue(entry: PropertyEntry): boolean {
  return entry.value === null && (entry.type === 'int' || entry.type === 'bool');
}

function text(entry: PropertyEntry): string {
  const { value } = entry;
  if (value === null) return entry.type === 'vm' || entry.type === 'label' ? 'None' : '';
  if (typeof value === 'boolean') return value ? 'True' : 'False';
  return String(value);
}

/**
 * `qvm-prefs VM PROPERTY`: the value's line, or null to print nothing (a VM reference that is
 * none, an int without value). An empty string prints an empty line, as in Qubes.
 */
export function formatPropertyValue(entry: PropertyEntry): string | null {
  if (hasNoValue(entry)) return null;
  if (entry.value === null && (entry.type === 'vm' || entry.type === 'label')) return null;
  return `${text(entry)}\n`;
}

/**
 * `qvm-prefs VM`: every property, sorted, as `name  D  value` (`D` when it is the default,
 * `-` when set, `U` alone when there is no value); `hideDefault` leaves out the defaults.
 */
export function formatPropertyList(properties: Readonly<Record<string, PropertyEntry>>, options: { hideDefault?: boolean } = {}): string {
  const names = Object.keys(properties).sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  if (names.length === 0) return '';
  const width = Math.max(...names.map((n) => n.length));
  let out = '';
  for (const name of names) {
    const entry = properties[name]!;
    if (hasNoValue(entry)) {
      out += `${name.padEnd(width)}  U\n`;
    } else if (!entry.default) {
      out += `${`${name.padEnd(width)}  -  ${text(entry)}`.trimEnd()}\n`;
    } else if (!options.hideDefault) {
      out += `${`${name.padEnd(width)}  D  ${text(entry)}`.trimEnd()}\n`;
    }
  }
  return out;
}

/** Words of `text` in lines of at most `width` characters (a word longer than that stands alone). */
export function wrapWords(text: string, width: number): string[] {
  const lines: string[] = [];
  let line = '';
  for (const word of text.split(/\s+/).filter((w) => w !== '')) {
    if (line !== '' && line.length + 1 + word.length > width) {
      lines.push(line);
      line = word;
    } else {
      line = line === '' ? word : `${line} ${word}`;
    }
  }
  if (line !== '') lines.push(line);
  return lines;
}

/** `--help-properties`: `  name  doc`, sorted, the doc wrapped at 80 columns under itself. */
export function formatPropertyHelp(docs: Readonly<Record<string, string>>): string {
  const names = Object.keys(docs).sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  if (names.length === 0) return '';
  const width = Math.max(...names.map((n) => n.length));
  const indent = ' '.repeat(width + 4);
  return names
    .map((name) => {
      const [first = '', ...rest] = wrapWords(docs[name] ?? '', Math.max(80 - indent.length, 20));
      return [`  ${name.padEnd(width)}  ${first}`.trimEnd(), ...rest.map((line) => `${indent}${line}`)].join('\n');
    })
    .join('\n')
    .concat('\n');
}
