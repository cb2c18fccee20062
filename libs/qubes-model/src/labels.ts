import { QubesError } from '@qubes-bus/contracts';
import { touch, type Mutation } from './mutation';
import type { QubesApp } from './qubes-app';

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

export function createLabel(app: QubesApp, name: string, color: string): Mutation {
  for (const label of app.labels.values()) {
    if (label.name === name) throw new QubesError('LABEL_EXISTS', `a label named ${name} exists already`);
  }
  const index = Math.max(BUILTIN_LABEL_COUNT, ...app.labels.keys()) + 1;
  const undo = touch(app, null, () => app.labels.delete(index));
  app.labels.set(index, { index, color: color.toLowerCase(), name });
  return { changes: [{ type: 'label-add', label: name, color: color.toLowerCase(), index }], undo };
}

export function removeLabel(app: QubesApp, name: string): Mutation {
  const label = app.label(name);
  if (label.index <= BUILTIN_LABEL_COUNT) throw new QubesError('LABEL_IN_USE', `${name} is a built-in label`);
  const ref = `label-${label.index}`;
  const users = [...app.domains.entries()].filter(([, d]) => d.props.get('label')?.ref === ref).map(([n]) => n);
  if (users.length > 0) {
    throw new QubesError('LABEL_IN_USE', `${name} is the label of ${users.join(', ')}`, { details: { usedBy: users } });
  }
  const undo = touch(app, null, () => app.labels.set(label.index, label));
  app.labels.delete(label.index);
  return { changes: [{ type: 'label-remove', label: name }], undo };
}
