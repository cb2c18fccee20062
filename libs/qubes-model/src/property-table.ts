import { PropertyType, QubesError, VmClass, type PropertyValue } from '@qubes-bus/contracts';

/**
 * The property tables of Qubes R4 (qubes/vm/qubesvm.py, qubes/vm/mix/net.py, qubes/vm/appvm.py,
 * qubes/vm/dispvm.py, qubes/vm/adminvm.py, qubes/app.py): each property is a type, a
 * validator, a default and a doc. Only explicitly set values are stored; the rest are computed
 * when read, mostly from the template or from a global property.
 */

/** What a default or a validator may look at: the VM (null for global properties) and the rest. */
export interface PropertyScope {
  /** The effective value of a property of `vm` (or a global one when vm is null). */
  value(vm: string | null, property: string): PropertyValue;
  /** The VM's template, if it is template-based. */
  templateOf(vm: string): string | null;
  classOf(vm: string): VmClass;
  qidOf(vm: string): number;
  exists(vm: string): boolean;
  /** VMs whose effective `property` is `vm`. */
  usersOf(vm: string, property: string): string[];
  hasPool(name: string): boolean;
  firstPool(): string | null;
}

export interface PropertyDef {
  readonly name: string;
  readonly type: PropertyType;
  readonly doc: string;
  /** The allowed values of an `enum`. */
  readonly values?: readonly string[];
  /** Whether null (none) is a value. */
  readonly allowNone?: boolean;
  /** Identity: set at creation, never after. */
  readonly writeOnce?: boolean;
  /** Computed, never stored nor set. */
  readonly readOnly?: boolean;
  /** For VM references: the classes the referenced VM may have. */
  readonly vmClasses?: readonly VmClass[];
  /** The value when none is set; undefined when the property has no default. */
  readonly defaultValue?: (vm: string | null, scope: PropertyScope) => PropertyValue | undefined;
  /** Checks a value already of the right type; throws a QubesError. */
  readonly validate?: (value: PropertyValue, vm: string | null, scope: PropertyScope) => void;
}

function invalid(message: string): QubesError {
  return new QubesError('PROPERTY_VALUE_INVALID', message);
}

const positiveInt = (name: string) => (value: PropertyValue) => {
  if (value !== null && (value as number) <= 0) throw invalid(`${name} must be positive`);
};
const nonNegativeInt = (name: string) => (value: PropertyValue) => {
  if (value !== null && (value as number) < 0) throw invalid(`${name} must not be negative`);
};

/** `fallback` unless the VM has a template, whose value it then takes (Qubes' _default_with_template). */
function withTemplate(name: string, fallback: (vm: string | null, scope: PropertyScope) => PropertyValue) {
  return (vm: string | null, scope: PropertyScope): PropertyValue => {
    const template = vm === null ? null : scope.templateOf(vm);
    return template !== null ? scope.value(template, name) : fallback(vm, scope);
  };
}

const global = (name: string) => (_vm: string | null, scope: PropertyScope) => scope.value(null, name);

/** A disposable template: a VM whose template_for_dispvms is set (qubes/vm/__init__.py). */
function disposableTemplate(name: string) {
  return (value: PropertyValue, _vm: string | null, scope: PropertyScope): void => {
    if (value !== null && scope.value(value as string, 'template_for_dispvms') !== true) {
      throw invalid(`${name}: ${value as string} is not a disposable template (template_for_dispvms is not set)`);
    }
  };
}

/** A kernel is a directory of the linux-kernel pool named by its version: never a path. */
function kernelVersion(name: string) {
  return (value: PropertyValue): void => {
    if (value !== null && !/^[a-zA-Z0-9._+-]{1,64}$/.test(value as string)) throw invalid(`${name}: ${JSON.stringify(value)} is not a kernel version`);
    if (value === '.' || value === '..') throw invalid(`${name}: ${JSON.stringify(value)} is not a kernel version`);
  };
}

/** Qubes' vmid_to_ipv4: 10.137.<qid / 256>.<qid % 256>, skipping .0 and .255 above 254. */
export function vmidToIpv4(prefix: string, vmid: number): string {
  if (vmid < 255) return `${prefix}.${(vmid >> 8) & 0xff}.${vmid & 0xff}`;
  const id = vmid - 1;
  return `${prefix}.${Math.floor(id / 254)}.${(id % 254) + 1}`;
}

const identity: readonly PropertyDef[] = [
  { name: 'name', type: PropertyType.Str, writeOnce: true, doc: 'User-assigned name of the VM.' },
  { name: 'qid', type: PropertyType.Int, writeOnce: true, doc: 'Internal, persistent identifier of the VM (0 to 10000).' },
  { name: 'uuid', type: PropertyType.Uuid, writeOnce: true, doc: 'UUID of the VM, as the hypervisor knows it.' },
  { name: 'label', type: PropertyType.Label, doc: 'Colourful label assigned to the VM.' },
];

const netvmProperty = (defaultNone: boolean): PropertyDef => ({
  name: 'netvm',
  type: PropertyType.Vm,
  allowNone: true,
  doc: 'The VM that provides network to this one; none: disconnected; unset: the default netvm.',
  // As in Qubes, even the default netvm itself follows default_netvm: setting default_netvm to
  // a VM that uses the default is a loop, and refused as one.
  defaultValue: defaultNone ? () => null : (_vm, scope) => scope.value(null, 'default_netvm'),
  // Loops are checked by the app on the whole graph, once the value is in place.
  validate: (value, _vm, scope) => {
    if (value !== null && scope.value(value as string, 'provides_network') !== true) {
      throw invalid(`netvm: ${value as string} does not provide network (provides_network is not set)`);
    }
  },
});

/** QubesVM: everything but dom0 (qubes/vm/qubesvm.py and the net mixin). */
function qubesVm(options: { templateBased: boolean; netvmDefaultNone: boolean; backupsDefault: boolean }): PropertyDef[] {
  return [
    ...identity,
    { name: 'installed_by_rpm', type: PropertyType.Bool, defaultValue: () => false, doc: "Whether this VM's image came from a package tracked by the package manager." },
    {
      name: 'virt_mode',
      type: PropertyType.Enum,
      values: ['pv', 'pvh', 'hvm'],
      defaultValue: withTemplate('virt_mode', () => 'pvh'),
      doc: "Virtualisation mode: full (hvm), paravirtualised (pv) or hybrid (pvh). Template-based VMs use their template's by default.",
    },
    { name: 'memory', type: PropertyType.Int, defaultValue: withTemplate('memory', () => 400), validate: positiveInt('memory'), doc: 'Memory (MiB) the VM starts with.' },
    { name: 'maxmem', type: PropertyType.Int, defaultValue: withTemplate('maxmem', () => 4000), validate: nonNegativeInt('maxmem'), doc: 'Most memory (MiB) the balancer may give the VM; 0 disables balancing.' },
    { name: 'vcpus', type: PropertyType.Int, defaultValue: withTemplate('vcpus', () => 2), validate: positiveInt('vcpus'), doc: 'Number of virtual CPUs.' },
    {
      name: 'kernel',
      type: PropertyType.Str,
      allowNone: true,
      defaultValue: withTemplate('kernel', global('default_kernel')),
      validate: kernelVersion('kernel'),
      doc: 'Kernel the VM boots (a directory of the linux-kernel pool); none: the one inside the VM.',
    },
    {
      name: 'kernelopts',
      type: PropertyType.Str,
      defaultValue: withTemplate('kernelopts', (vm, scope) => (vm !== null && scope.value(vm, 'kernel') !== null ? 'swiotlb=2048' : '')),
      doc: 'Kernel command line.',
    },
    { name: 'debug', type: PropertyType.Bool, defaultValue: () => false, doc: 'Turns on debugging features.' },
    {
      name: 'default_user',
      type: PropertyType.Str,
      defaultValue: withTemplate('default_user', () => 'user'),
      validate: (value) => {
        if (!/^[a-zA-Z0-9@._-]{1,64}$/.test(value as string)) throw invalid(`default_user: ${JSON.stringify(value)} is not a user name`);
      },
      doc: 'User that applications run as.',
    },
    { name: 'qrexec_timeout', type: PropertyType.Int, defaultValue: withTemplate('qrexec_timeout', global('default_qrexec_timeout')), validate: positiveInt('qrexec_timeout'), doc: 'Seconds the VM has to start its qrexec agent.' },
    { name: 'shutdown_timeout', type: PropertyType.Int, defaultValue: withTemplate('shutdown_timeout', global('default_shutdown_timeout')), validate: positiveInt('shutdown_timeout'), doc: 'Seconds the VM has to shut down before it is killed.' },
    { name: 'autostart', type: PropertyType.Bool, defaultValue: () => false, doc: 'Start the VM when dom0 boots.' },
    { name: 'include_in_backups', type: PropertyType.Bool, defaultValue: () => options.backupsDefault, doc: 'Include the VM in backups by default.' },
    { name: 'backup_timestamp', type: PropertyType.Int, allowNone: true, defaultValue: () => null, validate: nonNegativeInt('backup_timestamp'), doc: 'Time of the last backup of the VM, in seconds since the epoch.' },
    {
      name: 'default_dispvm',
      type: PropertyType.Vm,
      allowNone: true,
      defaultValue: options.templateBased ? withTemplateOrGlobal('default_dispvm') : global('default_dispvm'),
      validate: disposableTemplate('default_dispvm'),
      doc: 'Disposable template for disposables started from this VM.',
    },
    {
      name: 'management_dispvm',
      type: PropertyType.Vm,
      allowNone: true,
      defaultValue: withTemplate('management_dispvm', global('management_dispvm')),
      validate: disposableTemplate('management_dispvm'),
      doc: 'Disposable template for disposables that manage this VM.',
    },
    { name: 'guivm', type: PropertyType.Vm, allowNone: true, defaultValue: global('default_guivm'), doc: 'VM that shows the windows of this one.' },
    { name: 'audiovm', type: PropertyType.Vm, allowNone: true, defaultValue: global('default_audiovm'), doc: 'VM that plays the sound of this one.' },
    { name: 'updateable', type: PropertyType.Bool, readOnly: true, defaultValue: () => !options.templateBased, doc: 'Whether the VM keeps changes to its root volume (not template-based).' },
    { name: 'stubdom_mem', type: PropertyType.Int, allowNone: true, defaultValue: () => null, validate: positiveInt('stubdom_mem'), doc: 'Memory (MiB) of the stub domain of an HVM.' },
    {
      name: 'keyboard_layout',
      type: PropertyType.Str,
      defaultValue: () => 'us++',
      validate: (value) => {
        if (!/^[a-zA-Z0-9_-]*\+[a-zA-Z0-9_-]*\+[a-zA-Z0-9_,-]*$/.test(value as string)) throw invalid('keyboard_layout must be layout+variant+options');
      },
      doc: 'Keyboard layout, as layout+variant+options.',
    },
    {
      name: 'mac',
      type: PropertyType.Str,
      defaultValue: () => '00:16:3e:5e:6c:00',
      validate: (value) => {
        if (!/^([0-9a-f]{2}:){5}[0-9a-f]{2}$/.test(value as string)) throw invalid(`mac: ${JSON.stringify(value)} is not a MAC address`);
      },
      doc: 'MAC address of the network card the VM sees.',
    },
    {
      name: 'ip',
      type: PropertyType.Ip,
      allowNone: true,
      defaultValue: (vm, scope) => {
        if (vm === null) return null;
        const networked = scope.value(vm, 'netvm') !== null || scope.value(vm, 'provides_network') === true;
        if (!networked) return null;
        // Disposables are numbered apart (qubes/vm/mix/net.py get_ip_for_vm).
        return scope.classOf(vm) === VmClass.DispVM ? vmidToIpv4('10.138', scope.value(vm, 'dispid') as number) : vmidToIpv4('10.137', scope.qidOf(vm));
      },
      doc: 'IPv4 address of the VM (10.137.0.<qid> by default; 10.138.<dispid> for a disposable).',
    },
    netvmProperty(options.netvmDefaultNone),
    {
      name: 'provides_network',
      type: PropertyType.Bool,
      defaultValue: () => false,
      validate: (value, vm, scope) => {
        const users = vm === null ? [] : scope.usersOf(vm, 'netvm');
        if (value === false && users.length > 0) throw invalid(`provides_network: ${users.join(', ')} still use ${vm} as netvm; change theirs first`);
      },
      doc: 'Whether the VM gives network to others (formerly NetVM or ProxyVM).',
    },
  ];
}

function withTemplateOrGlobal(name: string) {
  return withTemplate(name, global(name));
}

const templateForDispvms: PropertyDef = {
  name: 'template_for_dispvms',
  type: PropertyType.Bool,
  defaultValue: () => false,
  validate: (value, vm, scope) => {
    if (value === true || vm === null) return;
    const users = [...scope.usersOf(vm, 'template'), ...scope.usersOf(vm, 'default_dispvm')];
    if (users.length > 0) throw invalid(`template_for_dispvms: ${vm} is the disposable template of ${users.join(', ')}`);
  },
  doc: 'Whether disposables may be based on this VM.',
};

const appVmTemplate: PropertyDef = {
  name: 'template',
  type: PropertyType.Vm,
  vmClasses: [VmClass.TemplateVM],
  defaultValue: global('default_template'),
  doc: 'The TemplateVM whose root volume this VM uses.',
};

const dispVmTemplate: PropertyDef = {
  name: 'template',
  type: PropertyType.Vm,
  vmClasses: [VmClass.AppVM, VmClass.StandaloneVM],
  defaultValue: global('default_dispvm'),
  validate: (value, _vm, scope) => {
    if (scope.value(value as string, 'template_for_dispvms') !== true) {
      throw new QubesError('TEMPLATE_CLASS_INVALID', `template: ${value as string} is not a disposable template (template_for_dispvms is not set)`);
    }
  },
  doc: 'The disposable template (an AppVM with template_for_dispvms) this disposable is made from.',
};

function replace(list: PropertyDef[], ...defs: PropertyDef[]): PropertyDef[] {
  const names = new Set(defs.map((d) => d.name));
  return [...list.filter((d) => !names.has(d.name)), ...defs].sort((a, b) => a.name.localeCompare(b.name));
}

const ADMIN_VM: PropertyDef[] = ([
  { name: 'name', type: PropertyType.Str, readOnly: true, defaultValue: () => 'dom0', doc: 'The name of the admin VM: dom0.' },
  { name: 'qid', type: PropertyType.Int, readOnly: true, defaultValue: () => 0, doc: 'The admin VM is qid 0.' },
  { name: 'uuid', type: PropertyType.Uuid, readOnly: true, defaultValue: () => '00000000-0000-0000-0000-000000000000', doc: 'The admin VM has the all-zero UUID.' },
  { name: 'label', type: PropertyType.Label, doc: 'Colourful label assigned to dom0.' },
  {
    name: 'default_dispvm',
    type: PropertyType.Vm,
    allowNone: true,
    defaultValue: global('default_dispvm'),
    validate: disposableTemplate('default_dispvm'),
    doc: 'Disposable template for disposables started from dom0.',
  },
  { name: 'include_in_backups', type: PropertyType.Bool, readOnly: true, defaultValue: () => true, doc: "dom0's home is always offered for backup." },
  { name: 'updateable', type: PropertyType.Bool, readOnly: true, defaultValue: () => true, doc: 'dom0 updates itself.' },
  {
    name: 'keyboard_layout',
    type: PropertyType.Str,
    defaultValue: () => 'us++',
    doc: 'Keyboard layout of dom0, as layout+variant+options.',
  },
] satisfies PropertyDef[]).sort((a, b) => a.name.localeCompare(b.name));

/** The property table of each VM class. */
export const CLASS_PROPERTIES: Readonly<Record<VmClass, readonly PropertyDef[]>> = {
  [VmClass.AdminVM]: ADMIN_VM,
  [VmClass.TemplateVM]: replace(qubesVm({ templateBased: false, netvmDefaultNone: true, backupsDefault: true })),
  [VmClass.StandaloneVM]: replace(qubesVm({ templateBased: false, netvmDefaultNone: false, backupsDefault: true }), templateForDispvms),
  [VmClass.AppVM]: replace(qubesVm({ templateBased: true, netvmDefaultNone: false, backupsDefault: true }), templateForDispvms, appVmTemplate),
  [VmClass.DispVM]: replace(
    qubesVm({ templateBased: true, netvmDefaultNone: false, backupsDefault: false }),
    dispVmTemplate,
    { name: 'dispid', type: PropertyType.Int, writeOnce: true, doc: 'Number of the disposable, unique while it exists.' },
    { name: 'auto_cleanup', type: PropertyType.Bool, defaultValue: () => false, doc: 'Remove the disposable when it shuts down.' },
  ),
};

const globalVm = (name: string, doc: string, extra: Partial<PropertyDef> = {}): PropertyDef => ({
  name,
  type: PropertyType.Vm,
  allowNone: true,
  defaultValue: () => null,
  doc,
  ...extra,
});

const poolProperty = (name: string, doc: string): PropertyDef => ({
  name,
  type: PropertyType.Str,
  defaultValue: (_vm, scope) => scope.value(null, 'default_pool'),
  validate: (value, _vm, scope) => {
    if (!scope.hasPool(value as string)) throw invalid(`${name}: there is no pool ${JSON.stringify(value)}`);
  },
  doc,
});

/** The system's global properties (qubes/app.py Qubes). */
export const GLOBAL_PROPERTIES: readonly PropertyDef[] = ([
  globalVm('default_guivm', 'Default VM to show the windows of others.', { defaultValue: (_vm, scope) => (scope.exists('dom0') ? 'dom0' : null) }),
  globalVm('default_audiovm', 'Default VM to play the sound of others.', { defaultValue: (_vm, scope) => (scope.exists('dom0') ? 'dom0' : null) }),
  globalVm('default_netvm', 'Netvm of VMs that do not name one.', {
    validate: (value, _vm, scope) => {
      if (value !== null && scope.value(value as string, 'provides_network') !== true) {
        throw invalid(`default_netvm: ${value as string} does not provide network (provides_network is not set)`);
      }
    },
  }),
  globalVm('default_template', 'TemplateVM of new AppVMs that do not name one.', { vmClasses: [VmClass.TemplateVM] }),
  globalVm('updatevm', 'VM that downloads updates for dom0.'),
  globalVm('clockvm', 'VM that keeps the time for dom0.'),
  globalVm('default_dispvm', 'Default disposable template.', { validate: disposableTemplate('default_dispvm') }),
  globalVm('management_dispvm', 'Default disposable template for managing VMs.', { validate: disposableTemplate('management_dispvm') }),
  { name: 'default_kernel', type: PropertyType.Str, allowNone: true, defaultValue: () => null, validate: kernelVersion('default_kernel'), doc: 'Kernel VMs boot when they name none.' },
  {
    name: 'default_pool',
    type: PropertyType.Str,
    defaultValue: (_vm, scope) => (scope.hasPool('varlibqubes') ? 'varlibqubes' : scope.firstPool()),
    validate: (value, _vm, scope) => {
      if (!scope.hasPool(value as string)) throw invalid(`default_pool: there is no pool ${JSON.stringify(value)}`);
    },
    doc: 'Pool for the volumes of new VMs.',
  },
  poolProperty('default_pool_kernel', 'Pool of the kernel volumes of new VMs.'),
  poolProperty('default_pool_private', 'Pool of the private volumes of new VMs.'),
  poolProperty('default_pool_root', 'Pool of the root volumes of new VMs.'),
  poolProperty('default_pool_volatile', 'Pool of the volatile volumes of new VMs.'),
  { name: 'default_qrexec_timeout', type: PropertyType.Int, defaultValue: () => 60, validate: positiveInt('default_qrexec_timeout'), doc: 'Default qrexec_timeout of VMs.' },
  { name: 'default_shutdown_timeout', type: PropertyType.Int, defaultValue: () => 60, validate: positiveInt('default_shutdown_timeout'), doc: 'Default shutdown_timeout of VMs.' },
  { name: 'stats_interval', type: PropertyType.Int, defaultValue: () => 3, validate: positiveInt('stats_interval'), doc: 'Seconds between statistics events.' },
  { name: 'check_updates_vm', type: PropertyType.Bool, defaultValue: () => true, doc: 'Whether VMs check for updates.' },
] satisfies PropertyDef[]).sort((a, b) => a.name.localeCompare(b.name));

const byName = (defs: readonly PropertyDef[]) => new Map(defs.map((d) => [d.name, d]));
const CLASS_INDEX = Object.fromEntries(Object.entries(CLASS_PROPERTIES).map(([k, v]) => [k, byName(v)])) as Record<VmClass, Map<string, PropertyDef>>;
const GLOBAL_INDEX = byName(GLOBAL_PROPERTIES);

/** The definition of a property of a VM class (or a global one when klass is null). */
export function propertyDef(klass: VmClass | null, name: string): PropertyDef | undefined {
  return klass === null ? GLOBAL_INDEX.get(name) : CLASS_INDEX[klass].get(name);
}

export function propertyDefs(klass: VmClass | null): readonly PropertyDef[] {
  return klass === null ? GLOBAL_PROPERTIES : CLASS_PROPERTIES[klass];
}
