import { destOf, requestIfServed, type Router } from '@qubes-bus/bus';
import {
  AdminVmclassList,
  AdminVmCreate,
  AdminVmList,
  AdminVmRemove,
  CREATABLE_CLASSES,
  PowerState,
  QubesError,
  StorageCreateVolumes,
  StorageRemoveVolumes,
  VmClass,
  type PropertyEntry,
  type VmSummary,
} from '@qubes-bus/contracts';
import { propertyDef, type Domain, type Mutation, type QubesApp } from '@qubes-bus/qubes-model';
import type { Registry } from '../registry';
import { vmStorage } from './storage';

/**
 * The columns every listing shows, per VM, kept while the VM's revision stands (a change to
 * its template or a global default bumps it too): listing a thousand VMs computes only what
 * changed since the last listing. The power state is live, never kept.
 */
const rows = new WeakMap<Domain, { revision: string; row: Omit<VmSummary, 'state' | 'properties'> }>();

function baseRow(app: QubesApp, name: string): Omit<VmSummary, 'state' | 'properties'> {
  const d = app.domain(name);
  const revision = app.revision(name);
  const cached = rows.get(d);
  if (cached !== undefined && cached.revision === revision) return cached.row;
  const ref = (property: string): string | null =>
    propertyDef(d.klass, property) === undefined ? null : (app.value(name, property) as string | null);
  const row = { name, class: d.klass, label: app.value(name, 'label') as string, template: ref('template'), netvm: ref('netvm'), revision };
  rows.set(d, { revision, row });
  return row;
}

function summary(registry: Registry, app: QubesApp, name: string, properties: readonly string[] | undefined): VmSummary {
  const d = app.domain(name);
  const row: VmSummary = { ...baseRow(app, name), state: registry.power.state(name, d.klass) };
  if (properties !== undefined) {
    const wanted = properties.includes('*') ? app.propertyNames(name) : properties;
    const values: Record<string, PropertyEntry> = {};
    // A property another class lacks is simply absent from that VM's row (qvm-ls shows "-").
    for (const property of wanted) if (propertyDef(d.klass, property) !== undefined) values[property] = app.property(name, property);
    row.properties = values;
  }
  return row;
}

export function registerVmHandlers(router: Router, registry: Registry): void {
  router.serve(AdminVmList, ({ payload }, ctx) => {
    const app = registry.app;
    const properties = payload?.properties;
    for (const p of properties ?? []) {
      if (p !== '*' && propertyDef(null, p) === undefined && !Object.values(VmClass).some((k) => propertyDef(k, p) !== undefined)) {
        throw new QubesError('PROPERTY_UNKNOWN', `no VM has a property ${p}`, { details: { property: p } });
      }
    }
    const names = ctx.dest === 'dom0' || ctx.dest === undefined ? [...app.domains.keys()] : [ctx.dest];
    if (names.length === 1) app.domain(names[0]!); // VM_NOT_FOUND
    return { domains: names.map((name) => summary(registry, app, name, properties)) };
  });

  router.serve(AdminVmclassList, () => ({ classes: Object.values(VmClass).sort() }));

  // Names whose domain is being defined: a second create of one name waits for nobody, it fails.
  const creating = new Set<string>();

  for (const klass of CREATABLE_CLASSES) {
    router.serve(AdminVmCreate[klass], async ({ arg, payload }, ctx) => {
      const spec = { name: payload.name, label: payload.label, template: arg, properties: payload.properties };
      const create = (app: QubesApp, uuid?: string): Mutation => {
        if (payload.pool !== undefined && !app.hasPool(payload.pool)) {
          throw new QubesError('PROPERTY_VALUE_INVALID', `there is no pool ${payload.pool}`, { details: { pool: payload.pool } });
        }
        if (creating.has(payload.name)) throw new QubesError('VM_ALREADY_EXISTS', `a VM named ${payload.name} is being created`, { details: { vm: payload.name } });
        return app.createDomain(klass, { ...spec, uuid });
      };
      // Checked and described in memory, then undone at once (nothing else runs meanwhile), so
      // that libvirt defines the domain, and gives its UUID, before the VM exists for anyone.
      const flavor = await registry.lifecycle.domainFlavor();
      const dryRun = create(registry.app);
      let xml: string;
      try {
        xml = registry.lifecycle.definitionXml(registry.app, payload.name, flavor);
      } finally {
        dryRun.undo();
      }
      creating.add(payload.name);
      let uuid: string | null;
      try {
        uuid = await registry.lifecycle.defineNew(payload.name, xml);
      } finally {
        creating.delete(payload.name);
      }
      try {
        await registry.write(ctx, (app) => ({ mutation: create(app, uuid ?? undefined), reply: () => null }));
      } catch (err) {
        // Checked again, and refused (or not saved): the domain goes too, never left orphaned.
        if (uuid !== null) await registry.lifecycle.undefine(payload.name, uuid, ctx.log);
        throw err;
      }
      // Then its volumes, as Qubes' create_on_disk: made by the storage service, their config
      // kept here. Without a storage service (offline) they are made at the VM's first start.
      try {
        const app = registry.app;
        const template = app.templateOf(payload.name);
        const made = await requestIfServed(ctx, ctx.log, StorageCreateVolumes, {
          payload: {
            vm: vmStorage(registry, payload.name),
            template: template === null ? null : vmStorage(registry, template),
            ...(payload.pool === undefined ? {} : { pool: payload.pool }),
          },
        });
        if (made !== null) await registry.write(ctx, (current) => ({ mutation: current.setVolumeConfig(payload.name, made.volumes), reply: () => null }));
      } catch (err) {
        await registry.write(ctx, (app) => ({ mutation: app.removeDomain(payload.name), reply: () => null }));
        if (uuid !== null) await registry.lifecycle.undefine(payload.name, uuid, ctx.log);
        throw err;
      }
      const app = registry.app;
      return { name: payload.name, qid: app.domain(payload.name).qid, uuid: app.value(payload.name, 'uuid') as string, revision: app.revision(payload.name) };
    });
  }

  router.serve(AdminVmRemove, async ({ payload }, ctx) => {
    const vm = destOf(ctx);
    await registry.lifecycle.checkHalted(vm);
    let uuid = '';
    const storage = vmStorage(registry, vm);
    await registry.write(ctx, (app) => {
      const d = app.domain(vm);
      app.checkRevision(vm, payload?.revision);
      if (d.klass !== VmClass.AdminVM && registry.power.state(vm, d.klass) !== PowerState.Halted) {
        throw new QubesError('VM_RUNNING', `${vm} is running; shut it down first`, { details: { vm } });
      }
      uuid = app.value(vm, 'uuid') as string;
      return { mutation: app.removeDomain(vm), reply: () => null };
    });
    // Once the VM is gone from qubes.xml on disk, its domain goes (a failure is logged with the UUID).
    await registry.lifecycle.undefine(vm, uuid, ctx.log);
    // and its volumes (without a storage service, their files stay: logged)
    if (storage.volumes.length > 0) {
      try {
        await requestIfServed(ctx, ctx.log, StorageRemoveVolumes, { payload: { vm: storage } });
      } catch (err) {
        // The VM is gone already; a retry could not name it. The files are told in the log.
        ctx.log.error({ err, vm, volumes: storage.volumes.map((v) => v['vid']) }, 'the volumes of a removed VM could not all be removed');
      }
    }
    return null;
  });
}

