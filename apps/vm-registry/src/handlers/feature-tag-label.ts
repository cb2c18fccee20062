import { destOf, type Router } from '@qubes-bus/bus';
import { AdminLabel, AdminVmFeature, AdminVmTag } from '@qubes-bus/contracts';
import type { Registry } from '../registry';

export function registerFeatureHandlers(router: Router, registry: Registry): void {
  router.serve(AdminVmFeature.List, (_req, ctx) => {
    const vm = destOf(ctx);
    return { features: Object.fromEntries(registry.app.domain(vm).features), revision: registry.app.revision(vm) };
  });
  router.serve(AdminVmFeature.Get, ({ arg }, ctx) => ({ value: registry.app.feature(destOf(ctx), arg) }));
  router.serve(AdminVmFeature.CheckWithTemplate, ({ arg }, ctx) => ({ value: registry.app.featureVia(destOf(ctx), arg, 'template') }));
  router.serve(AdminVmFeature.CheckWithNetvm, ({ arg }, ctx) => ({ value: registry.app.featureVia(destOf(ctx), arg, 'netvm') }));
  router.serve(AdminVmFeature.Set, ({ arg, payload }, ctx) =>
    registry.write(ctx, (app) => {
      const vm = destOf(ctx);
      app.domain(vm);
      app.checkRevision(vm, payload.revision);
      return { mutation: app.setFeature(vm, arg, payload.value), reply: () => ({ revision: app.revision(vm) }) };
    }),
  );
  router.serve(AdminVmFeature.Remove, ({ arg, payload }, ctx) =>
    registry.write(ctx, (app) => {
      const vm = destOf(ctx);
      app.domain(vm);
      app.checkRevision(vm, payload?.revision);
      return { mutation: app.removeFeature(vm, arg), reply: () => ({ revision: app.revision(vm) }) };
    }),
  );
}

export function registerTagHandlers(router: Router, registry: Registry): void {
  router.serve(AdminVmTag.List, (_req, ctx) => {
    const vm = destOf(ctx);
    return { tags: [...registry.app.domain(vm).tags], revision: registry.app.revision(vm) };
  });
  router.serve(AdminVmTag.Get, ({ arg }, ctx) => ({ present: registry.app.domain(destOf(ctx)).tags.has(arg) }));
  router.serve(AdminVmTag.Set, ({ arg, payload }, ctx) =>
    registry.write(ctx, (app) => {
      const vm = destOf(ctx);
      app.domain(vm);
      app.checkRevision(vm, payload?.revision);
      return { mutation: app.addTag(vm, arg), reply: () => ({ revision: app.revision(vm) }) };
    }),
  );
  router.serve(AdminVmTag.Remove, ({ arg, payload }, ctx) =>
    registry.write(ctx, (app) => {
      const vm = destOf(ctx);
      app.domain(vm);
      app.checkRevision(vm, payload?.revision);
      return { mutation: app.removeTag(vm, arg), reply: () => ({ revision: app.revision(vm) }) };
    }),
  );
}

export function registerLabelHandlers(router: Router, registry: Registry): void {
  router.serve(AdminLabel.List, () => ({
    labels: [...registry.app.labels.values()].sort((a, b) => a.index - b.index).map((l) => ({ name: l.name, color: l.color, index: l.index })),
  }));
  router.serve(AdminLabel.Get, ({ arg }) => ({ color: registry.app.label(arg).color }));
  router.serve(AdminLabel.Index, ({ arg }) => ({ index: registry.app.label(arg).index }));
  router.serve(AdminLabel.Create, ({ arg, payload }, ctx) =>
    registry.write(ctx, (app) => ({ mutation: app.createLabel(arg, payload), reply: () => null })),
  );
  router.serve(AdminLabel.Remove, ({ arg }, ctx) => registry.write(ctx, (app) => ({ mutation: app.removeLabel(arg), reply: () => null })));
}
