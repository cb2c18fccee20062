import { destOf, type Router } from '@qubes-bus/bus';
import {
  AdminHostInfo,
  AdminVmCurrentState,
  AdminVmKill,
  AdminVmPause,
  AdminVmShutdown,
  AdminVmStart,
  AdminVmUnpause,
} from '@qubes-bus/contracts';
import type { Registry } from '../registry';

/** admin.vm.Start … CurrentState and admin.host.Info: the lifecycle, on the bus. */
export function registerLifecycleHandlers(router: Router, registry: Registry): void {
  const lifecycle = registry.lifecycle;
  /** The VM of the call, which must exist. */
  const vmOf = (ctx: { dest: string | undefined }): string => {
    const vm = destOf(ctx);
    registry.app.domain(vm); // VM_NOT_FOUND
    return vm;
  };

  router.serve(AdminVmStart, async (_request, ctx) => {
    await lifecycle.start(vmOf(ctx), ctx.log, ctx.reqId);
    return null;
  });

  router.serve(AdminVmShutdown, async ({ arg }, ctx) => {
    const flags = new Set((arg ?? '').split('+'));
    await lifecycle.shutdown(vmOf(ctx), { force: flags.has('force'), wait: flags.has('wait') }, ctx.log);
    return null;
  });

  router.serve(AdminVmKill, async (_request, ctx) => {
    await lifecycle.kill(vmOf(ctx), ctx.log);
    return null;
  });

  router.serve(AdminVmPause, async (_request, ctx) => {
    await lifecycle.pause(vmOf(ctx), ctx.log);
    return null;
  });

  router.serve(AdminVmUnpause, async (_request, ctx) => {
    await lifecycle.unpause(vmOf(ctx), ctx.log);
    return null;
  });

  router.serve(AdminVmCurrentState, (_request, ctx) => lifecycle.currentState(vmOf(ctx)));

  router.serve(AdminHostInfo, () => lifecycle.hostInfo());
}
