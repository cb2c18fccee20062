import { VmClass } from '@qubes-bus/contracts';
import type { Label } from './labels';
import { childElements, isElement, parseXml, type XmlElement, type XmlNode } from './xml-tree';

export const ADMIN_VM_NAME = 'dom0';

/** A property as qubes.xml stores it: text, or a reference (labels). */
export interface StoredValue {
  readonly text?: string;
  readonly ref?: string;
  /** Attributes of the <property> element this code does not know, kept. */
  readonly attrs?: Readonly<Record<string, string>>;
}

/** What a container element held that this code does not model: its attributes, other children. */
export interface Extras {
  attrs: Record<string, string>;
  children: XmlNode[];
}

/** One VM as the store keeps it; only what is set explicitly is here. */
export interface Domain {
  readonly qid: number;
  readonly klass: VmClass;
  readonly props: Map<string, StoredValue>;
  readonly features: Map<string, string>;
  readonly tags: Set<string>;
  /** Kept verbatim: device assignments and volume config belong to their services. */
  devices: XmlElement[];
  volumeConfig: XmlElement | null;
  /** Attributes and elements this code does not know, written back as they came. */
  extraAttrs: Record<string, string>;
  extraChildren: XmlNode[];
  /** Per container (properties, features, tags): what it held that is not modelled. */
  containerExtras: Record<string, Extras>;
  /**
   * Bumped by every change and by every undo, never reused: a client that read a change later
   * undone (its save failed) cannot pass a revision check with it. A cache of the VM's XML is
   * checked against it too.
   */
  revision: number;
}

/** A VM with only the given properties set, and nothing else yet. */
export function newDomain(qid: number, klass: VmClass, props: Iterable<[string, StoredValue]> = []): Domain {
  return {
    qid,
    klass,
    props: new Map(props),
    features: new Map(),
    tags: new Set(),
    devices: [],
    volumeConfig: null,
    extraAttrs: {},
    extraChildren: [],
    containerExtras: {},
    revision: 0,
  };
}

/** dom0, labelled black, as Qubes creates it. */
export function newAdminVm(app: { labels: Map<number, Label> }): Domain {
  const black = [...app.labels.values()].find((l) => l.name === 'black') ?? [...app.labels.values()][0];
  return newDomain(0, VmClass.AdminVM, black === undefined ? [] : [['label', { ref: `label-${black.index}` }]]);
}

/** The VMs whose devices `d` has assigned (backend-domain of its device assignments). */
export function deviceBackends(d: Domain): string[] {
  const backends: string[] = [];
  for (const devices of d.devices) {
    for (const child of devices.children) {
      if ('raw' in child) {
        // kept unparsed at load, and validated with the whole file then
        const parsed = parseXml(`<devices>${child.raw}</devices>`, { path: 'devices', root: ['devices'], validated: true });
        for (const device of childElements(parsed, 'device')) if (device.attrs['backend-domain']) backends.push(device.attrs['backend-domain']);
      } else if (isElement(child) && child.name === 'device' && child.attrs['backend-domain']) {
        backends.push(child.attrs['backend-domain']);
      }
    }
  }
  return backends;
}
