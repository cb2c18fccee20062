import { AdminVmList } from './api/vm';
import type { Endpoint, EventDescriptor } from './descriptors';

/** Every endpoint and event of the public contract, for listings and for the uniqueness test. */
export const ALL_ENDPOINTS: readonly Endpoint[] = [AdminVmList];
export const ALL_EVENTS: readonly EventDescriptor[] = [];
