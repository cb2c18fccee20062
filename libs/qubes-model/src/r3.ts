import { QubesError, VmClass, type PropertyValue } from '@qubes-bus/contracts';
import { DEFAULT_LABELS } from './labels';
import { ADMIN_VM_NAME, newAdminVm, newDomain, type Domain } from './domain';
import { QubesApp } from './qubes-app';
import { childElements, element, malformed, type XmlElement } from './xml-tree';

/**
 * Qubes R3 (the seed era, release3.2 core/qubes.py) kept VMs as `<QubesVmCollection>` with one
 * element per VM class and qids for references. This converts it the way Qubes' own migration
 * did (qubes/core2migration.py, qubes/app.py _migrate_global_properties):
 * - TemplateVm/TemplateHVm become TemplateVMs; AppVm/HVm/NetVm/ProxyVm become AppVMs on their
 *   template, or StandaloneVMs without one;
 * - NetVm and ProxyVm become VMs with provides_network; *HVm become virt_mode=hvm, others pv;
 * - qids become names; a proxy that followed default_fw_netvm gets it as its explicit netvm,
 *   since R4 has one default_netvm;
 * - attributes left at their R3 default are not stored, so the R4 defaults apply;
 * - services become `service.<name>` features ('1' enabled, '' disabled, as qvm-service in R4);
 *   PCI devices become assignments; backup_* attributes become backup-* features.
 * Deviation: Qubes' early migration kept some service names as bare features; R4's
 * qvm-service reads only `service.*`, so all go there.
 */

const VM_ELEMENTS = ['QubesTemplateVm', 'QubesTemplateHVm', 'QubesAppVm', 'QubesHVm', 'QubesNetVm', 'QubesProxyVm'] as const;

/** R3 attributes copied when they differ from R3's default (core2migration's list). */
const SIMPLE_ATTRIBUTES: Record<string, string | null> = {
  installed_by_rpm: 'False',
  include_in_backups: 'True',
  qrexec_timeout: '60',
  vcpus: '2',
  memory: '400',
  maxmem: '4000',
  default_user: 'user',
  debug: 'False',
  mac: null,
  autostart: 'False',
};

function qidOf(value: string | undefined): number | null {
  if (value === undefined || value.toLowerCase() === 'none' || value === '') return null;
  const qid = Number(value);
  return Number.isInteger(qid) ? qid : null;
}

/** A Python literal of R3's services (a dict of str to bool), read without evaluating it. */
export function parsePythonBoolDict(literal: string): Map<string, boolean> {
  const out = new Map<string, boolean>();
  const body = literal.trim().replace(/^\{|\}$/g, '').trim();
  if (body === '') return out;
  for (const entry of body.split(',')) {
    const m = /^\s*(['"])([^'"]+)\1\s*:\s*(True|False)\s*$/.exec(entry);
    if (m === null) throw new Error(`cannot read ${JSON.stringify(entry.trim())} as 'name': True/False`);
    out.set(m[2]!, m[3] === 'True');
  }
  return out;
}

/** R3's pcidevs, a Python list of "BB:DD.F" strings. */
export function parsePythonStringList(literal: string): string[] {
  return [...literal.matchAll(/(['"])([^'"]*)\1/g)].map((m) => m[2]!);
}

export function convertR3(root: XmlElement, path: string, epoch?: string): QubesApp {
  const app = new QubesApp(epoch);
  for (const label of DEFAULT_LABELS) app.labels.set(label.index, label);
  const dataDir = path.includes('/') ? path.slice(0, path.lastIndexOf('/')) || '/' : '.';
  app.pools = [
    // R3 images are plain files with device-mapper snapshots: the `file` driver.
    element('pool', { dir_path: dataDir, driver: 'file', name: 'varlibqubes', revisions_to_keep: '1' }),
    element('pool', { dir_path: `${dataDir}/vm-kernels`, driver: 'linux-kernel', name: 'linux-kernel' }),
  ];
  app.globals.set('default_pool_kernel', { text: 'linux-kernel' });

  app.addLoadedDomain(ADMIN_VM_NAME, newAdminVm(app));

  const elements = VM_ELEMENTS.flatMap((tag) => childElements(root, tag));
  const names = new Map<number, string>([[0, ADMIN_VM_NAME]]);
  for (const el of elements) {
    const qid = qidOf(el.attrs['qid']);
    const name = el.attrs['name'];
    if (qid === null || qid === 0 || name === undefined) throw malformed(path, `<${el.name}> without a usable qid and name`);
    if (names.has(qid)) throw malformed(path, `two VMs have qid ${qid}`);
    names.set(qid, name);
  }
  const nameOf = (qid: number | null, what: string): string | null => {
    if (qid === null) return null;
    const name = names.get(qid);
    if (name === undefined) throw malformed(path, `${what} refers to qid ${qid}, which no VM has`);
    return name;
  };

  // Templates first, then the rest, non-template-based before template-based (as R3 loaded).
  const ordered = [
    ...elements.filter((e) => e.name.startsWith('QubesTemplate')),
    ...elements.filter((e) => !e.name.startsWith('QubesTemplate') && qidOf(e.attrs['template_qid']) === null),
    ...elements.filter((e) => !e.name.startsWith('QubesTemplate') && qidOf(e.attrs['template_qid']) !== null),
  ];
  for (const el of ordered) {
    try {
      app.addLoadedDomain(el.attrs['name']!, convertVm(el, nameOf, app), path);
    } catch (err) {
      if (err instanceof QubesError && err.code === 'STORE_MALFORMED') throw err;
      throw malformed(path, `VM ${el.attrs['name']}: ${(err as Error).message}`);
    }
  }

  // Global properties: qids to names.
  const setGlobal = (name: string, value: PropertyValue): void => {
    if (value !== null) app.globals.set(name, { text: String(value) });
  };
  const defaultNetvm = nameOf(qidOf(root.attrs['default_netvm']), 'default_netvm');
  const defaultFwNetvm = nameOf(qidOf(root.attrs['default_fw_netvm']), 'default_fw_netvm');
  setGlobal('default_template', nameOf(qidOf(root.attrs['default_template']), 'default_template'));
  setGlobal('default_netvm', defaultNetvm);
  setGlobal('updatevm', nameOf(qidOf(root.attrs['updatevm']), 'updatevm'));
  setGlobal('clockvm', nameOf(qidOf(root.attrs['clockvm']), 'clockvm'));
  const kernel = root.attrs['default_kernel'];
  if (kernel !== undefined && kernel.toLowerCase() !== 'none' && kernel !== '') setGlobal('default_kernel', kernel);

  // Netvm references, once every VM exists.
  for (const el of ordered) {
    const d = app.domain(el.attrs['name']!);
    if (el.name === 'QubesNetVm') {
      d.props.set('netvm', { text: '' });
      continue;
    }
    const usesDefault = (el.attrs['uses_default_netvm'] ?? 'True') === 'True';
    if (!usesDefault) {
      d.props.set('netvm', { text: nameOf(qidOf(el.attrs['netvm_qid']), `netvm of ${el.attrs['name']}`) ?? '' });
    } else if (el.name === 'QubesProxyVm' && defaultFwNetvm !== defaultNetvm) {
      // R3 proxies followed default_fw_netvm; R4 has only default_netvm.
      d.props.set('netvm', { text: defaultFwNetvm ?? '' });
    }
  }
  app.checkLoaded(path);
  return app;
}

function convertVm(el: XmlElement, nameOf: (qid: number | null, what: string) => string | null, app: QubesApp): Domain {
  const a = el.attrs;
  const qid = Number(a['qid']);
  const template = nameOf(qidOf(a['template_qid']), `template of ${a['name']}`);
  const klass = el.name.startsWith('QubesTemplate') ? VmClass.TemplateVM : template === null ? VmClass.StandaloneVM : VmClass.AppVM;
  const label = app.label(a['label'] ?? 'red');
  const props = new Map<string, { text?: string; ref?: string }>([
    ['qid', { text: String(qid) }],
    ['name', { text: a['name']! }],
    ['uuid', { text: a['uuid'] ?? crypto.randomUUID() }],
    ['label', { ref: `label-${label.index}` }],
  ]);
  if (klass === VmClass.AppVM) props.set('template', { text: template! });
  for (const [attr, r3Default] of Object.entries(SIMPLE_ATTRIBUTES)) {
    const value = a[attr];
    if (value !== undefined && value !== '' && value !== r3Default) props.set(attr, { text: value });
  }
  for (const attr of ['kernel', 'kernelopts']) {
    if ((a[`uses_default_${attr}`] ?? 'True').toLowerCase() !== 'true') {
      const value = a[attr];
      props.set(attr, { text: value === undefined || value.toLowerCase() === 'none' ? '' : value });
    }
  }
  props.set('virt_mode', { text: el.name.includes('HVm') ? 'hvm' : 'pv' });
  if (el.name === 'QubesNetVm' || el.name === 'QubesProxyVm') props.set('provides_network', { text: 'True' });

  const features = new Map<string, string>();
  for (const [service, enabled] of parsePythonBoolDict(a['services'] ?? '{}')) features.set(`service.${service}`, enabled ? '1' : '');
  for (const attr of ['backup_content', 'backup_path', 'backup_size']) {
    if (a[attr] !== undefined) features.set(attr.replace(/_/g, '-'), a[attr]!);
  }
  if (a['internal'] === 'True') features.set('internal', '1');

  const pcidevs = parsePythonStringList(a['pcidevs'] ?? '[]');
  const strictReset = (a['pci_strictreset'] ?? 'True') === 'True';
  const devices =
    pcidevs.length === 0
      ? []
      : [
          element(
            'devices',
            { class: 'pci' },
            pcidevs.map((bdf) =>
              element('device', { 'backend-domain': ADMIN_VM_NAME, id: bdf.replace(/:/g, '_') }, strictReset ? [] : [element('option', { name: 'no-strict-reset' }, [{ text: 'True' }])]),
            ),
          ),
        ];
  const domain = newDomain(qid, klass, props);
  for (const [name, value] of features) domain.features.set(name, value);
  domain.devices = devices;
  return domain;
}
