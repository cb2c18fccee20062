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
  AdminVmList,
  PowerState,
  powerStateSchema,
  VmClass,
  vmClassSchema,
  vmSummarySchema,
} from './api/vm';
export type { VmSummary } from './api/vm';
export { ALL_ENDPOINTS, ALL_EVENTS } from './registry';
