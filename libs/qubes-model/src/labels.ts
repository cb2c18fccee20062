/** A VM label: a colour with a name (qubes/__init__.py Label). */
export interface Label {
  readonly index: number;
  /** `0xRRGGBB`, as qubes.xml stores it. */
  readonly color: string;
  readonly name: string;
}

/** The eight labels every Qubes installation starts with (qubes/app.py load_initial_values). */
export const DEFAULT_LABELS: readonly Label[] = [
  { index: 1, color: '0xcc0000', name: 'red' },
  { index: 2, color: '0xf57900', name: 'orange' },
  { index: 3, color: '0xedd400', name: 'yellow' },
  { index: 4, color: '0x73d216', name: 'green' },
  { index: 5, color: '0x555555', name: 'gray' },
  { index: 6, color: '0x3465a4', name: 'blue' },
  { index: 7, color: '0x75507b', name: 'purple' },
  { index: 8, color: '0x000000', name: 'black' },
];

/** Labels 1 to 8 come with every installation and cannot be removed (qubes/config.py). */
export const BUILTIN_LABEL_COUNT = 8;

/** qubes.xml refers to labels as `label-<index>`. */
export function labelId(label: Label): string {
  return `label-${label.index}`;
}
