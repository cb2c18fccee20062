import {
  AppPropertyReset,
  AppPropertySet,
  DomainAdd,
  DomainDelete,
  FeatureDelete,
  FeatureSet,
  LabelAdd,
  LabelRemove,
  TagAdd,
  TagDelete,
  VmPropertyReset,
  VmPropertySet,
} from './api/events';
import { AdminVmFeature } from './api/feature';
import { AdminLabel } from './api/label';
import { AdminProperty, AdminVmProperty } from './api/property';
import { AdminVmTag } from './api/tag';
import { AdminVmclassList, AdminVmCreate, AdminVmList, AdminVmRemove } from './api/vm';
import {
  AdminHostInfo,
  AdminVmCurrentState,
  AdminVmKill,
  AdminVmPause,
  AdminVmShutdown,
  AdminVmStart,
  AdminVmUnpause,
  DevicesPostStop,
  DevicesPreStart,
  DomainPaused,
  DomainPreStart,
  DomainShutdown,
  DomainStart,
  DomainStartFailed,
  DomainStopped,
  DomainUnpaused,
  StoragePostStop,
  StoragePreStart,
} from './api/lifecycle';
import type { Endpoint, EventDescriptor } from './descriptors';

/** Every endpoint and event of the public contract, for listings and for the uniqueness test. */
export const ALL_ENDPOINTS: readonly Endpoint[] = [
  AdminVmList,
  AdminVmclassList,
  ...Object.values(AdminVmCreate),
  AdminVmRemove,
  ...Object.values(AdminVmProperty),
  ...Object.values(AdminProperty),
  ...Object.values(AdminVmFeature),
  ...Object.values(AdminVmTag),
  ...Object.values(AdminLabel),
  AdminVmStart,
  AdminVmShutdown,
  AdminVmKill,
  AdminVmPause,
  AdminVmUnpause,
  AdminVmCurrentState,
  AdminHostInfo,
  StoragePreStart,
  StoragePostStop,
  DevicesPreStart,
  DevicesPostStop,
];

export const ALL_EVENTS: readonly EventDescriptor[] = [
  DomainAdd,
  DomainDelete,
  VmPropertySet,
  VmPropertyReset,
  FeatureSet,
  FeatureDelete,
  TagAdd,
  TagDelete,
  AppPropertySet,
  AppPropertyReset,
  LabelAdd,
  LabelRemove,
  DomainPreStart,
  DomainStart,
  DomainStartFailed,
  DomainShutdown,
  DomainStopped,
  DomainPaused,
  DomainUnpaused,
];
