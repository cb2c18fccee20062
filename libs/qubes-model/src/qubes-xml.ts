import { VmClass, vmClassSchema } from '@qubes-bus/contracts';
import { DEFAULT_LABELS } from './labels';
import { ADMIN_VM_NAME, newAdminVm, newDomain, type Domain, type Extras, type StoredValue } from './domain';
import { QubesApp } from './qubes-app';
import { convertR3 } from './r3';
import { childElements, element, isElement, malformed, parseXml, renderAt, renderXml, textOf, type Prerendered, type XmlElement, type XmlNode } from './xml-tree';

/**
 * qubes.xml in Qubes R4's `<qubes>` format (qubes/app.py __xml__): labels, pools, global
 * properties, domains. Reading keeps what this code does not know (attributes, elements,
 * device assignments, volume config) and writing puts it back, in Qubes' order.
 */

/** The store of a new installation: the default labels and pools, and dom0 (label black). */
export function initialQubesApp(dataDir: string, epoch?: string, options: { reflinks?: boolean } = {}): QubesApp {
  const app = new QubesApp(epoch);
  for (const label of DEFAULT_LABELS) app.labels.set(label.index, label);
  // On a filesystem without reflinks (ext4) the pool must say it accepts slow, full copies.
  const check: Record<string, string> = options.reflinks === false ? { setup_check: 'no' } : {};
  app.pools = [
    element('pool', { dir_path: dataDir, driver: 'file-reflink', name: 'varlibqubes', revisions_to_keep: '1', ...check }),
    element('pool', { dir_path: `${dataDir}/vm-kernels`, driver: 'linux-kernel', name: 'linux-kernel' }),
  ];
  app.globals.set('default_pool_kernel', { text: 'linux-kernel' });
  app.addLoadedDomain(ADMIN_VM_NAME, newAdminVm(app));
  return app;
}

export interface LoadResult {
  app: QubesApp;
  /** The file was in Qubes 3's QubesVmCollection format and has been converted. */
  convertedFromR3: boolean;
}

export interface LoadOptions {
  /** Revision epoch of this load. */
  epoch?: string | undefined;
  /** validateXml has passed on this text already (see ParseOptions.validated). */
  validated?: boolean;
}

/** Parses qubes.xml, R4 or R3 (converted); STORE_MALFORMED says where anything is off. */
export function loadQubesXml(untrustedText: string, path = 'qubes.xml', options: LoadOptions | string = {}): LoadResult {
  const { epoch, validated = false } = typeof options === 'string' ? { epoch: options } : options;
  const root = parseXml(untrustedText, { path, root: ['qubes', 'QubesVmCollection'], validated });
  if (root.name === 'QubesVmCollection') return { app: convertR3(root, path, epoch), convertedFromR3: true };
  return { app: fromR4(root, path, epoch), convertedFromR3: false };
}

/**
 * A container element (labels, properties, features, ...): `known` takes the children it
 * understands; the rest (comments, elements of a later version) and the container's own
 * attributes are kept, to be written back as they came.
 */
function readContainer(container: XmlElement, known: (child: XmlElement) => boolean): Extras {
  const extras: Extras = { attrs: { ...container.attrs }, children: [] };
  for (const child of container.children) {
    if ('text' in child) continue; // indentation
    if (!isElement(child) || !known(child)) extras.children.push(child);
  }
  return extras;
}

function readProperties(parent: XmlElement, into: Map<string, StoredValue>): Extras {
  return readContainer(parent, (p) => {
    if (p.name !== 'property' || p.attrs['name'] === undefined) return false;
    const { name, ref, ...others } = p.attrs;
    const attrs = Object.keys(others).length > 0 ? { attrs: others } : {};
    into.set(name, ref !== undefined ? { ref, ...attrs } : { text: textOf(p), ...attrs });
    return true;
  });
}

function fromR4(root: XmlElement, path: string, epoch?: string): QubesApp {
  const app = new QubesApp(epoch);
  app.rootAttrs = { ...root.attrs };
  let domainsElement: XmlElement | undefined;
  for (const child of root.children) {
    if ('text' in child) continue;
    if (!isElement(child)) {
      app.extraChildren.push(child); // a comment
      continue;
    }
    switch (child.name) {
      case 'labels':
        app.containerExtras['labels'] = readContainer(child, (l) => {
          if (l.name !== 'label') return false;
          const index = Number(/^label-(\d+)$/.exec(l.attrs['id'] ?? '')?.[1]);
          if (!Number.isInteger(index)) throw malformed(path, `label id ${JSON.stringify(l.attrs['id'])} is not label-<number>`);
          app.labels.set(index, { index, color: l.attrs['color'] ?? '0x000000', name: textOf(l) });
          return true;
        });
        break;
      case 'pools':
        app.containerExtras['pools'] = readContainer(child, (p) => p.name === 'pool' && (app.pools.push(p), true));
        break;
      case 'properties':
        app.containerExtras['properties'] = readProperties(child, app.globals);
        break;
      case 'domains':
        domainsElement = child;
        app.containerExtras['domains'] = readContainer(child, (d) => d.name === 'domain');
        break;
      default:
        app.extraChildren.push(child);
    }
  }
  for (const d of domainsElement === undefined ? [] : childElements(domainsElement, 'domain')) {
    const { name, domain } = readDomain(d, path);
    app.addLoadedDomain(name, domain, path);
  }
  if (!app.domains.has(ADMIN_VM_NAME)) app.addLoadedDomain(ADMIN_VM_NAME, newAdminVm(app)); // as Qubes' load() does
  app.checkLoaded(path);
  return app;
}

function readDomain(d: XmlElement, path: string): { name: string; domain: Domain } {
  const { id, class: klassAttr, ...extraAttrs } = d.attrs;
  const qid = Number(/^domain-(\d+)$/.exec(id ?? '')?.[1]);
  if (!Number.isInteger(qid)) throw malformed(path, `domain id ${JSON.stringify(id)} is not domain-<qid>`);
  const klass = vmClassSchema.safeParse(klassAttr);
  if (!klass.success) throw malformed(path, `domain-${qid} has an unknown class ${JSON.stringify(klassAttr)}`);
  const domain = newDomain(qid, klass.data);
  domain.extraAttrs = extraAttrs;
  for (const child of d.children) {
    if ('text' in child) continue;
    if (!isElement(child)) {
      domain.extraChildren.push(child); // a comment
      continue;
    }
    switch (child.name) {
      case 'properties':
        domain.containerExtras['properties'] = readProperties(child, domain.props);
        break;
      case 'features':
        domain.containerExtras['features'] = readContainer(
          child,
          (f) => f.name === 'feature' && f.attrs['name'] !== undefined && Object.keys(f.attrs).length === 1 && (domain.features.set(f.attrs['name'], textOf(f)), true),
        );
        break;
      case 'tags':
        domain.containerExtras['tags'] = readContainer(
          child,
          (t) => t.name === 'tag' && t.attrs['name'] !== undefined && Object.keys(t.attrs).length === 1 && (domain.tags.add(t.attrs['name']), true),
        );
        break;
      case 'devices':
        domain.devices.push(child);
        break;
      case 'volume-config':
        domain.volumeConfig = child;
        break;
      default:
        domain.extraChildren.push(child);
    }
  }
  const storedQid = domain.props.get('qid')?.text;
  if (storedQid !== undefined && Number(storedQid) !== qid) {
    throw malformed(path, `domain-${qid} says qid ${storedQid}`);
  }
  const name = klass.data === VmClass.AdminVM ? ADMIN_VM_NAME : domain.props.get('name')?.text;
  if (name === undefined || name === '') throw malformed(path, `domain-${qid} has no name`);
  if (klass.data === VmClass.AdminVM && qid !== 0) throw malformed(path, `the AdminVM must be domain-0, not domain-${qid}`);
  return { name, domain };
}

const NO_EXTRAS: Extras = { attrs: {}, children: [] };

/** A container with what we model first, then what we kept of it. */
function container(name: string, extras: Extras | undefined, known: XmlNode[]): XmlElement {
  const { attrs, children } = extras ?? NO_EXTRAS;
  return element(name, attrs, [...known, ...children]);
}

function propertiesElement(props: Map<string, StoredValue>, extras: Extras | undefined): XmlElement {
  return container(
    'properties',
    extras,
    [...props].map(([name, v]) =>
      v.ref !== undefined
        ? element('property', { name, ref: v.ref, ...v.attrs })
        : element('property', { name, ...v.attrs }, v.text ? [{ text: v.text }] : []),
    ),
  );
}

/** Serialises to the R4 format, in Qubes' order; the same store always gives the same text. */
export function serializeQubesXml(app: QubesApp): string {
  const labels = [...app.labels.values()].sort((a, b) => a.index - b.index);
  const domains = [...app.domains.values()].sort((a, b) => a.qid - b.qid);
  const extras = app.containerExtras;
  const root = element('qubes', app.rootAttrs, [
    container('labels', extras['labels'], labels.map((l) => element('label', { id: `label-${l.index}`, color: l.color }, [{ text: l.name }]))),
    container('pools', extras['pools'], app.pools),
    propertiesElement(app.globals, extras['properties']),
    container('domains', extras['domains'], domains.map(renderDomain)),
    ...app.extraChildren,
  ]);
  return renderXml(root);
}

/**
 * A VM as XML, from a cache while the VM has not changed: a save rewrites the whole file, but
 * rendering only the VMs that changed keeps a save of a big store cheap.
 */
const rendered = new WeakMap<Domain, { revision: number; xml: Prerendered }>();

function renderDomain(d: Domain): Prerendered {
  const cached = rendered.get(d);
  if (cached !== undefined && cached.revision === d.revision) return cached.xml;
  const xml = renderAt(
    element('domain', { id: `domain-${d.qid}`, class: d.klass, ...d.extraAttrs }, [
      propertiesElement(d.klass === VmClass.AdminVM ? withoutIdentity(d.props) : d.props, d.containerExtras['properties']),
      container('features', d.containerExtras['features'], [...d.features].map(([name, value]) => element('feature', { name }, value === '' ? [] : [{ text: value }]))),
      container('tags', d.containerExtras['tags'], [...d.tags].map((name) => element('tag', { name }))),
      ...d.devices,
      ...(d.volumeConfig === null ? [] : [d.volumeConfig]),
      ...d.extraChildren,
    ]),
    2,
  );
  rendered.set(d, { revision: d.revision, xml });
  return xml;
}

/** dom0's name, qid and uuid are fixed, and Qubes does not store them. */
function withoutIdentity(props: Map<string, StoredValue>): Map<string, StoredValue> {
  return new Map([...props].filter(([name]) => !['name', 'qid', 'uuid'].includes(name)));
}
