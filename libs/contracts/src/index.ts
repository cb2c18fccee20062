export {
  decodeToken,
  encodeToken,
  isValidVmName,
  token,
  VM_NAME_MAX_LENGTH,
  vmNameFromToken,
  vmNameProblem,
} from './token';
export {
  API_PREFIX,
  APP_EVENT_PREFIX,
  EVENT_STREAM,
  INTERNAL_PREFIX,
  QUBESDB_BUCKET,
  REQUEST_ID_HEADER,
  ServiceName,
  SUBJECT_ROOT,
  Subjects,
  subjectsOverlap,
  VM_EVENT_PREFIX,
} from './subjects';
export { ERROR_CATALOG, ErrorKind, isErrorCode, isQubesError, QubesError } from './errors';
export type { ErrorBody, ErrorCode } from './errors';
export {
  DEFAULT_MAX_REQUEST_BYTES,
  defineApi,
  defineEvent,
  defineInternal,
  DestScope,
  eventEnvelope,
} from './descriptors';
export type {
  Endpoint,
  EndpointSpec,
  EventDescriptor,
  EventEnvelope,
  EventFieldsOf,
  EventMessageOf,
  EventSpec,
  ReplyOf,
  RequestInputOf,
  RequestOf,
} from './descriptors';
export {
  AdminVmclassList,
  AdminVmCreate,
  AdminVmList,
  AdminVmRemove,
  CREATABLE_CLASSES,
  createVmPayloadSchema,
  PowerState,
  powerStateSchema,
  VmClass,
  vmClassSchema,
  vmSummarySchema,
} from './api/vm';
export type { CreatableClass, CreateVmPayload, VmSummary } from './api/vm';
export {
  featureNameSchema,
  featureValueSchema,
  labelColorSchema,
  labelNameSchema,
  propertyEntrySchema,
  propertyNameSchema,
  PropertyType,
  propertyTypeSchema,
  propertyValueSchema,
  revisionSchema,
  tagNameSchema,
} from './api/common';
export type { PropertyEntry, PropertyValue } from './api/common';
export { AdminProperty, AdminVmProperty } from './api/property';
export { AdminVmFeature } from './api/feature';
export { AdminVmTag } from './api/tag';
export { AdminLabel, labelSchema } from './api/label';
export type { LabelInfo } from './api/label';
export {
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
export {
  AdminHostInfo,
  AdminVmCurrentState,
  AdminVmKill,
  AdminVmPause,
  AdminVmShutdown,
  AdminVmStart,
  AdminVmUnpause,
  currentStateSchema,
  DevicesPostStop,
  DevicesPreStart,
  diskSchema,
  DomainPaused,
  DomainPreStart,
  DomainShutdown,
  DomainStart,
  DomainStartFailed,
  DomainStopped,
  DomainUnpaused,
  hostInfoSchema,
  shutdownArgSchema,
  StoragePostStop,
  StoragePreStart,
} from './api/lifecycle';
export type { CurrentState, DiskInfo, HostInfoReply } from './api/lifecycle';
export { ALL_ENDPOINTS, ALL_EVENTS } from './registry';
