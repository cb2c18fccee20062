import type { Router } from '@qubes-bus/bus';
import {
  AdminPoolAdd,
  AdminPoolInfo,
  AdminPoolList,
  AdminPoolListDrivers,
  AdminPoolRemove,
  AdminPoolUsageDetails,
  PoolAdd,
  PoolDelete,
  QubesError,
  RegistryPoolUsers,
} from '@qubes-bus/contracts';
import { DRIVERS, poolFromAttrs } from '../pool/drivers';
import type { Storage } from '../storage';

/** admin.pool.*: the storage pools (qubes/api/admin.py pool_*). */
export function registerPoolHandlers(router: Router, storage: Storage): void {
  router.serve(AdminPoolList, () => storage.poolNames());

  router.serve(AdminPoolListDrivers, () => Object.fromEntries(Object.entries(DRIVERS).map(([name, driver]) => [name, [...driver.options]])));

  router.serve(AdminPoolInfo, async ({ arg }) => {
    const attrs = storage.poolAttrsOf(arg);
    try {
      const usage = await storage.pool(arg).usage();
      return { ...attrs, size: String(usage.size), usage: String(usage.usage) };
    } catch (err) {
      // a pool that cannot be used still shows what qubes.xml says of it, and why
      if (err instanceof QubesError) return { ...attrs, error: err.message };
      throw err;
    }
  });

  router.serve(AdminPoolUsageDetails, async ({ arg }) => {
    storage.poolAttrsOf(arg);
    const usage = await storage.pool(arg).usage();
    return { data_size: usage.size, data_usage: usage.usage };
  });

  router.serve(AdminPoolAdd, async ({ arg, payload }, ctx) => {
    const pool = poolFromAttrs({ ...payload.options, name: payload.name, driver: arg });
    await storage.addPool(ctx, pool);
    ctx.log.info({ pool: pool.config }, 'pool added');
    storage.bus.emit(PoolAdd, { qualifier: pool.name }, { pool: pool.name, driver: pool.driver });
    return null;
  });

  router.serve(AdminPoolRemove, async ({ arg }, ctx) => {
    storage.poolAttrsOf(arg);
    const users = await ctx.request(RegistryPoolUsers, { payload: { pool: arg } });
    if (users.vms.length > 0 || users.properties.length > 0) {
      const named = [...users.vms.map((vm) => `VM ${vm}`), ...users.properties];
      throw new QubesError('POOL_IN_USE', `pool ${arg} is in use by ${named.slice(0, 5).join(', ')}${named.length > 5 ? ', ...' : ''}`, {
        details: { pool: arg, usedBy: users },
      });
    }
    await storage.removePool(ctx, arg);
    storage.bus.emit(PoolDelete, { qualifier: arg }, { pool: arg });
    return null;
  });
}
