import { VmClass, vmClassSchema } from '@qubes-bus/contracts';
import { DEFAULT_LABELS } from './labels';
import { ADMIN_VM_NAME, newAdminVm, newDomain, QubesApp, type Domain, type StoredValue } from './qubes-app';
import { convertR3 } from './r3';
import { childElements, element, isElement, malformed, parseXml, renderAt, renderXml, textOf, type Prerendered, type XmlElement } from './xml-tree';

/**
 * qubes.xml in Qubes R4's `<qubes>` format (qubes/app.py __xml__): labels, pools, global
 * properties, domains. Reading keeps what this code does not know (attributes, elements,
 * device assignments, volume config) and writing puts it back, in Qubes' order.
 */

/** The store of a new installation: the default labels and pools, and dom0 (label black). */
export function initialQubesApp(dataDir: string, epoch?: string): QubesApp {
  const app = new QubesApp(epoch);
  for (const label of DEFAULT_LABELS) app.labels.set(label.index, label);
  app.pools = [
    element('pool', { dir_path: dataDir, driver: 'file-reflink', name: 'varlibqubes', revisions_to_keep: '1' }),
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

function readProperties(parent: XmlElement): Map<string, StoredValue> {
  const props = new Map<string, StoredValue>();
  for (const p of childElements(parent, 'property')) {
    const name = p.attrs['name'];
    if (name === undefined) continue;
    props.set(name, p.attrs['ref'] !== undefined ? { ref: p.attrs['ref'] } : { text: textOf(p) });
  }
  return props;
}

function fromR4(root: XmlElement, path: string, epoch?: string): QubesApp {
  const app = new QubesApp(epoch);
  app.rootAttrs = { ...root.attrs };
  let domainsElement: XmlElement | undefined;
  for (const child of root.children) {
    if (!isElement(child)) continue;
    switch (child.name) {
      case 'labels':
        for (const l of childElements(child, 'label')) {
          const index = Number(/^label-(\d+)$/.exec(l.attrs['id'] ?? '')?.[1]);
          if (!Number.isInteger(index)) throw malformed(path, `label id ${JSON.stringify(l.attrs['id'])} is not label-<number>`);
          app.labels.set(index, { index, color: l.attrs['color'] ?? '0x000000', name: textOf(l) });
        }
        break;
      case 'pools':
        app.pools = childElements(child, 'pool');
        break;
      case 'properties':
        for (const [k, v] of readProperties(child)) app.globals.set(k, v);
        break;
      case 'domains':
        domainsElement = child;
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
    if (!isElement(child)) continue;
    switch (child.name) {
      case 'properties':
        for (const [k, v] of readProperties(child)) domain.props.set(k, v);
        break;
      case 'features':
        for (const f of childElements(child, 'feature')) domain.features.set(f.attrs['name'] ?? '', textOf(f));
        break;
      case 'tags':
        for (const t of childElements(child, 'tag')) domain.tags.add(t.attrs['name'] ?? textOf(t));
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

function propertiesElement(props: Map<string, StoredValue>): XmlElement {
  return element(
    'properties',
    {},
    [...props].map(([name, v]) => (v.ref !== undefined ? element('property', { name, ref: v.ref }) : element('property', { name }, v.text ? [{ text: v.text }] : []))),
  );
}

/** Serialises to the R4 format, in Qubes' order; the same store always gives the same text. */
export function serializeQubesXml(app: QubesApp): string {
  const labels = [...app.labels.values()].sort((a, b) => a.index - b.index);
  const domains = [...app.domains.values()].sort((a, b) => a.qid - b.qid);
  const root = element('qubes', app.rootAttrs, [
    element('labels', {}, labels.map((l) => element('label', { id: `label-${l.index}`, color: l.color }, [{ text: l.name }]))),
    element('pools', {}, app.pools),
    propertiesElement(app.globals),
    element(
      'domains',
      {},
      domains.map(renderDomain),
    ),
    ...app.extraChildren,
  ]);
  return renderXml(root);
}

/**
 * A VM as XML, from a cache while the VM has not changed: a save rewrites the whole file, but
 * rendering only the VMs that changed keeps a save of a big store cheap.
 */
const rendered = new WeakMap<Domain, { generation: number; xml: Prerendered }>();

function renderDomain(d: Domain): Prerendered {
  const cached = rendered.get(d);
  if (cached !== undefined && cached.generation === d.generation) return cached.xml;
  const xml = renderAt(
    element('domain', { id: `domain-${d.qid}`, class: d.klass, ...d.extraAttrs }, [
      propertiesElement(d.klass === VmClass.AdminVM ? withoutIdentity(d.props) : d.props),
      element('features', {}, [...d.features].map(([name, value]) => element('feature', { name }, value === '' ? [] : [{ text: value }]))),
      element('tags', {}, [...d.tags].map((name) => element('tag', { name }))),
      ...d.devices,
      ...(d.volumeConfig === null ? [] : [d.volumeConfig]),
      ...d.extraChildren,
    ]),
    2,
  );
  rendered.set(d, { generation: d.generation, xml });
  return xml;
}

/** dom0's name, qid and uuid are fixed, and Qubes does not store them. */
function withoutIdentity(props: Map<string, StoredValue>): Map<string, StoredValue> {
  return new Map([...props].filter(([name]) => !['name', 'qid', 'uuid'].includes(name)));
}
