import { PowerState, QubesError, VmClass, vmClassSchema, type VmSummary } from '@qubes-bus/contracts';
import { XMLBuilder, XMLParser, XMLValidator } from 'fast-xml-parser';
import { DEFAULT_LABELS, labelId, type Label } from './labels';

/**
 * qubes.xml in the R4 `<qubes>` format (qubes/app.py __xml__): labels, pools, global properties,
 * domains. A property is stored only when set explicitly, as text or, for labels, as a `ref`.
 */
export interface PropertyValue {
  readonly text?: string;
  readonly ref?: string;
}

export interface DomainRecord {
  readonly qid: number;
  readonly class: VmClass;
  readonly properties: Readonly<Record<string, PropertyValue>>;
  readonly features: Readonly<Record<string, string>>;
  readonly tags: readonly string[];
}

export interface PoolRecord {
  readonly [attribute: string]: string;
}

export interface QubesXml {
  readonly labels: readonly Label[];
  readonly pools: readonly PoolRecord[];
  readonly properties: Readonly<Record<string, PropertyValue>>;
  readonly domains: readonly DomainRecord[];
}

/** The store of a new installation: the default labels and pools, and dom0 (label black). */
export function initialQubesXml(dataDir: string): QubesXml {
  return {
    labels: DEFAULT_LABELS,
    pools: [
      { name: 'varlibqubes', driver: 'file-reflink', dir_path: dataDir, revisions_to_keep: '1' },
      { name: 'linux-kernel', driver: 'linux-kernel', dir_path: `${dataDir}/vm-kernels` },
    ],
    properties: { default_pool_kernel: { text: 'linux-kernel' } },
    domains: [
      { qid: 0, class: VmClass.AdminVM, properties: { label: { ref: 'label-8' } }, features: {}, tags: [] },
    ],
  };
}

const ARRAYS = new Set([
  'qubes.labels.label',
  'qubes.pools.pool',
  'qubes.properties.property',
  'qubes.domains.domain',
  'qubes.domains.domain.properties.property',
  'qubes.domains.domain.features.feature',
  'qubes.domains.domain.tags.tag',
]);

const parser = new XMLParser({
  ignoreAttributes: false,
  attributeNamePrefix: '@_',
  textNodeName: '#text',
  // Keep every value a string: qids, colours and booleans are not numbers here.
  parseTagValue: false,
  parseAttributeValue: false,
  trimValues: true,
  isArray: (_name, jpath) => ARRAYS.has(String(jpath)),
});

const builder = new XMLBuilder({
  ignoreAttributes: false,
  attributeNamePrefix: '@_',
  textNodeName: '#text',
  format: true,
  indentBy: '  ',
  suppressEmptyNode: true,
});

type Node = Record<string, unknown>;

function malformed(path: string, reason: string, position?: { line: number; col: number }): QubesError {
  const where = position === undefined ? '' : ` at line ${position.line}, column ${position.col}`;
  return new QubesError('STORE_MALFORMED', `${path} is malformed${where}: ${reason}; it was left untouched`, {
    details: { path, ...(position ?? {}) },
  });
}

/** Parses qubes.xml text; STORE_MALFORMED (with the parser's position) for anything off. */
export function parseQubesXml(untrustedText: string, path = 'qubes.xml'): QubesXml {
  // Qubes never writes a DTD; one here could only define entities (expansion bombs, XXE).
  if (/<!DOCTYPE/i.test(untrustedText)) throw malformed(path, 'a DOCTYPE is not allowed');
  const verdict = XMLValidator.validate(untrustedText);
  if (verdict !== true) throw malformed(path, verdict.err.msg, { line: verdict.err.line, col: verdict.err.col });
  const root = (parser.parse(untrustedText) as Node)['qubes'];
  if (root === undefined || typeof root !== 'object' || root === null) throw malformed(path, 'the root element is not <qubes>');
  const qubes = root as Node;

  const labels = children(qubes, 'labels', 'label').map((node) => {
    const id = attr(node, 'id');
    const index = Number(/^label-(\d+)$/.exec(id ?? '')?.[1]);
    if (!Number.isInteger(index)) throw malformed(path, `label id ${JSON.stringify(id)} is not label-<number>`);
    return { index, color: attr(node, 'color') ?? '0x000000', name: text(node) };
  });
  const pools = children(qubes, 'pools', 'pool').map((node) => attributes(node));
  const properties = readProperties(qubes);
  const domains = children(qubes, 'domains', 'domain').map((node): DomainRecord => {
    const id = attr(node, 'id');
    const qid = Number(/^domain-(\d+)$/.exec(id ?? '')?.[1]);
    if (!Number.isInteger(qid)) throw malformed(path, `domain id ${JSON.stringify(id)} is not domain-<qid>`);
    const klass = vmClassSchema.safeParse(attr(node, 'class'));
    if (!klass.success) throw malformed(path, `domain-${qid} has an unknown class ${JSON.stringify(attr(node, 'class'))}`);
    return {
      qid,
      class: klass.data,
      properties: readProperties(node),
      features: Object.fromEntries(children(node, 'features', 'feature').map((f) => [attr(f, 'name') ?? '', text(f)])),
      tags: children(node, 'tags', 'tag').map((t) => attr(t, 'name') ?? ''),
    };
  });
  return { labels, pools, properties, domains };
}

/** Serialises to the R4 format; the same model always gives the same text. */
export function serializeQubesXml(model: QubesXml): string {
  const propertyNodes = (props: Readonly<Record<string, PropertyValue>>): Node[] =>
    Object.entries(props).map(([name, value]) =>
      value.ref !== undefined ? { '@_name': name, '@_ref': value.ref } : { '@_name': name, '#text': value.text ?? '' },
    );
  const doc = {
    qubes: {
      labels: { label: model.labels.map((l) => ({ '@_id': labelId(l), '@_color': l.color, '#text': l.name })) },
      pools: { pool: model.pools.map((p) => Object.fromEntries(Object.entries(p).map(([k, v]) => [`@_${k}`, v]))) },
      properties: { property: propertyNodes(model.properties) },
      domains: {
        domain: model.domains.map((d) => ({
          '@_id': `domain-${d.qid}`,
          '@_class': d.class,
          properties: { property: propertyNodes(d.properties) },
          features: { feature: Object.entries(d.features).map(([name, value]) => ({ '@_name': name, '#text': value })) },
          tags: { tag: d.tags.map((name) => ({ '@_name': name })) },
        })),
      },
    },
  };
  return `<?xml version='1.0' encoding='UTF-8'?>\n${builder.build(doc) as string}`;
}

/** The listing row of every domain: name, class, label name, template, netvm. */
export function summarizeDomains(model: QubesXml): Array<Omit<VmSummary, 'state'>> {
  const labelNames = new Map(model.labels.map((l) => [labelId(l), l.name]));
  const globalNetvm = nonEmpty(model.properties['default_netvm']?.text);
  return model.domains.map((d) => {
    const isAdmin = d.class === VmClass.AdminVM;
    const label = d.properties['label'];
    const labelRef = label?.ref ?? label?.text ?? '';
    const explicitNetvm = d.properties['netvm'];
    return {
      name: isAdmin ? 'dom0' : (d.properties['name']?.text ?? `domain-${d.qid}`),
      class: d.class,
      label: labelNames.get(labelRef) ?? labelRef,
      template: nonEmpty(d.properties['template']?.text),
      netvm: isAdmin ? null : explicitNetvm !== undefined ? nonEmpty(explicitNetvm.text) : globalNetvm,
    };
  });
}

/** dom0 always runs; other VMs' power state comes from the hypervisor. */
export function initialPowerState(klass: VmClass): PowerState {
  return klass === VmClass.AdminVM ? PowerState.Running : PowerState.Halted;
}

function nonEmpty(value: string | undefined): string | null {
  return value === undefined || value === '' ? null : value;
}

function children(node: Node, container: string, element: string): Node[] {
  const holder = node[container];
  if (holder === undefined || holder === '' || typeof holder !== 'object' || holder === null) return [];
  const list = (holder as Node)[element];
  return Array.isArray(list) ? (list as Node[]).map((n) => (typeof n === 'object' && n !== null ? n : { '#text': String(n) })) : [];
}

function attr(node: Node, name: string): string | undefined {
  const value = node[`@_${name}`];
  return typeof value === 'string' ? value : undefined;
}

function attributes(node: Node): Record<string, string> {
  return Object.fromEntries(
    Object.entries(node)
      .filter(([k, v]) => k.startsWith('@_') && typeof v === 'string')
      .map(([k, v]) => [k.slice(2), v as string]),
  );
}

function text(node: Node): string {
  const value = node['#text'];
  return typeof value === 'string' ? value : '';
}

function readProperties(node: Node): Record<string, PropertyValue> {
  const out: Record<string, PropertyValue> = {};
  for (const p of children(node, 'properties', 'property')) {
    const name = attr(p, 'name');
    if (name === undefined) continue;
    const ref = attr(p, 'ref');
    out[name] = ref !== undefined ? { ref } : { text: text(p) };
  }
  return out;
}
