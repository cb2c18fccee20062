import type { Router } from '@qubes-bus/bus';
import {
  PowerState,
  RegistryPools,
  RegistryPoolUsers,
  RegistryResizeDisk,
  RegistrySetPools,
  RegistrySetVolumes,
  RegistryVmStorage,
  VmClass,
  type VmStorage,
} from '@qubes-bus/contracts';
import { propertyDef } from '@qubes-bus/qubes-model';
import type { Registry } from '../registry';

const DEFAULT_POOL_PROPERTIES = ['default_pool', 'default_pool_root', 'default_pool_private', 'default_pool_volatile', 'default_pool_kernel'];

/** What the storage service needs of a VM: class, template, power state, kernel, volume config. */
export function vmStorage(registry: Registry, vm: string): VmStorage {
  const app = registry.app;
  const d = app.domain(vm);
  const kernel = propertyDef(d.klass, 'kernel') === undefined ? null : (app.value(vm, 'kernel') as string | null);
  const virtMode = propertyDef(d.klass, 'virt_mode') === undefined ? null : (app.value(vm, 'virt_mode') as string);
  return {
    vm,
    class: d.klass,
    template: app.templateOf(vm),
    power_state: d.klass === VmClass.AdminVM ? PowerState.Running : registry.power.state(vm, d.klass),
    kernel: kernel === '' ? null : kernel,
    virt_mode: virtMode,
    volumes: app.volumeConfig(vm),
  };
}

/** The volume config and the pools, kept in qubes.xml for the storage service. */
export function registerStorageHandlers(router: Router, registry: Registry): void {
  router.serve(RegistryVmStorage, ({ payload }) => vmStorage(registry, payload.vm));

  router.serve(RegistryResizeDisk, async ({ payload }, ctx) => {
    registry.app.domain(payload.vm); // VM_NOT_FOUND
    return { told: await registry.lifecycle.resizeDisk(payload.vm, payload.frontend, payload.size, ctx.log) };
  });

  router.serve(RegistrySetVolumes, ({ payload }, ctx) =>
    registry.write(ctx, (app) => ({ mutation: app.setVolumeConfig(payload.vm, payload.volumes), reply: () => null })),
  );

  router.serve(RegistryPools, () => {
    const app = registry.app;
    const defaults: Record<string, string | null> = {};
    for (const property of DEFAULT_POOL_PROPERTIES) defaults[property] = app.value(null, property) as string | null;
    return { pools: app.pools.map((p) => ({ ...p.attrs })), defaults };
  });

  router.serve(RegistryPoolUsers, ({ payload }) => {
    const app = registry.app;
    const vms = [...app.domains.keys()].filter((vm) => app.volumeConfig(vm).some((v) => v['pool'] === payload.pool));
    const properties = DEFAULT_POOL_PROPERTIES.filter((property) => app.value(null, property) === payload.pool);
    return { vms, properties };
  });

  router.serve(RegistrySetPools, ({ payload }, ctx) => registry.write(ctx, (app) => ({ mutation: app.setPools(payload.pools), reply: () => null })));
}
