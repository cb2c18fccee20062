import { destOf, type HandlerContext, type Router } from '@qubes-bus/bus';
import { AdminProperty, AdminVmProperty } from '@qubes-bus/contracts';
import type { Registry } from '../registry';

/**
 * `admin.vm.property.*` (on a VM) and `admin.property.*` (the system's, on dom0): one set of
 * handlers, told apart by whose properties they touch.
 */
function registerPropertyHandlers(
  router: Router,
  registry: Registry,
  api: typeof AdminVmProperty | typeof AdminProperty,
  owner: (ctx: HandlerContext) => string | null,
): void {
  router.serve(api.List, (_req, ctx) => ({ properties: registry.app.propertyNames(owner(ctx)) }));
  router.serve(api.Get, ({ arg }, ctx) => {
    const vm = owner(ctx);
    return { name: arg, ...registry.app.property(vm, arg), revision: registry.app.revision(vm) };
  });
  router.serve(api.GetAll, (_req, ctx) => {
    const vm = owner(ctx);
    const app = registry.app;
    return { properties: Object.fromEntries(app.propertyNames(vm).map((p) => [p, app.property(vm, p)])), revision: app.revision(vm) };
  });
  router.serve(api.GetDefault, ({ arg }, ctx) => registry.app.defaultOf(owner(ctx), arg));
  router.serve(api.Help, ({ arg }, ctx) => ({ doc: registry.app.def(owner(ctx), arg).doc }));
  router.serve(api.Set, ({ arg, payload }, ctx) =>
    registry.write(ctx, (app) => {
      const vm = owner(ctx);
      app.checkRevision(vm, payload.revision);
      return { mutation: app.setProperty(vm, arg, payload.value), reply: () => ({ revision: app.revision(vm) }) };
    }),
  );
  router.serve(api.Reset, ({ arg, payload }, ctx) =>
    registry.write(ctx, (app) => {
      const vm = owner(ctx);
      app.checkRevision(vm, payload?.revision);
      return { mutation: app.resetProperty(vm, arg), reply: () => ({ revision: app.revision(vm) }) };
    }),
  );
}

export function registerAllPropertyHandlers(router: Router, registry: Registry): void {
  registerPropertyHandlers(router, registry, AdminVmProperty, (ctx) => {
    const vm = destOf(ctx);
    registry.app.domain(vm); // VM_NOT_FOUND before anything else
    return vm;
  });
  registerPropertyHandlers(router, registry, AdminProperty, () => null);
}
