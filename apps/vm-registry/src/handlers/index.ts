import type { Router } from '@qubes-bus/bus';
import type { Registry } from '../registry';
import { registerFeatureHandlers, registerLabelHandlers, registerTagHandlers } from './feature-tag-label';
import { registerLifecycleHandlers } from './lifecycle';
import { registerAllPropertyHandlers } from './property';
import { registerStorageHandlers } from './storage';
import { registerVmHandlers } from './vm';

/** Every endpoint of the registry, on whichever router carries them (NATS, or a pipe offline). */
export function registerHandlers(router: Router, registry: Registry): void {
  registerVmHandlers(router, registry);
  registerAllPropertyHandlers(router, registry);
  registerFeatureHandlers(router, registry);
  registerTagHandlers(router, registry);
  registerLabelHandlers(router, registry);
  registerLifecycleHandlers(router, registry);
  registerStorageHandlers(router, registry);
}
