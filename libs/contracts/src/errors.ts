/**
 * The error catalog: every failure a caller can see has one stable code from here.
 * docs/errors.md documents each code; a test keeps the two in step.
 *
 * `kind` tells how the service edge treats it:
 * - `user`: the request was understood but cannot be done (no such VM, VM running, ...);
 * - `bad-request`: the request itself is malformed (names the offending field);
 * - `internal`: a bug or an unexpected failure, logged with its stack;
 * - `transport`: raised on the caller's side when the bus cannot deliver the request.
 * `status` is the number sent in the NATS services `Nats-Service-Error-Code` header.
 */
export const ErrorKind = {
  User: 'user',
  BadRequest: 'bad-request',
  Internal: 'internal',
  Transport: 'transport',
} as const;
export type ErrorKind = (typeof ErrorKind)[keyof typeof ErrorKind];

interface CatalogEntry {
  readonly status: number;
  readonly kind: ErrorKind;
  readonly summary: string;
}

export const ERROR_CATALOG = {
  BAD_REQUEST: {
    status: 400,
    kind: ErrorKind.BadRequest,
    summary: 'The request body is not JSON or does not match the endpoint schema; details name the field.',
  },
  PAYLOAD_TOO_LARGE: {
    status: 413,
    kind: ErrorKind.BadRequest,
    summary: 'The request body is larger than the endpoint accepts.',
  },
  VM_NAME_INVALID: {
    status: 400,
    kind: ErrorKind.User,
    summary: "A VM name breaks Qubes' naming rules.",
  },
  VM_NOT_FOUND: {
    status: 404,
    kind: ErrorKind.User,
    summary: 'No VM of that name exists.',
  },
  VM_ALREADY_EXISTS: {
    status: 409,
    kind: ErrorKind.User,
    summary: 'A VM of that name already exists.',
  },
  VM_IN_USE: {
    status: 409,
    kind: ErrorKind.User,
    summary: 'The VM is the template or netvm of other VMs, or a global default; details name them.',
  },
  VM_RUNNING: {
    status: 409,
    kind: ErrorKind.User,
    summary: 'The operation needs the VM halted.',
  },
  VM_CLASS_INVALID: {
    status: 400,
    kind: ErrorKind.User,
    summary: 'The operation does not apply to a VM of this class (dom0 cannot be removed, ...).',
  },
  VM_NOT_RUNNING: {
    status: 409,
    kind: ErrorKind.User,
    summary: 'The operation needs the VM running (pause a halted VM, ...).',
  },
  VM_NOT_PAUSED: {
    status: 409,
    kind: ErrorKind.User,
    summary: 'The operation needs the VM paused (unpause a running VM).',
  },
  VM_START_FAILED: {
    status: 500,
    kind: ErrorKind.User,
    summary: 'The VM could not be started; the message says which step failed and why.',
  },
  QUBESDB_DISCONNECTED: {
    status: 409,
    kind: ErrorKind.User,
    summary: "The VM's QubesDB exists only while the VM runs.",
  },
  VMM_OFFLINE: {
    status: 503,
    kind: ErrorKind.User,
    summary: 'The registry runs without a hypervisor (offline mode, or no LIBVIRT_URI): VMs cannot be started or stopped.',
  },
  VMM_UNREACHABLE: {
    status: 503,
    kind: ErrorKind.User,
    summary: 'libvirt cannot be reached at LIBVIRT_URI; the next call tries again.',
  },
  VMM_ERROR: {
    status: 500,
    kind: ErrorKind.User,
    summary: "libvirt refused an operation; the message gives libvirt's reason.",
  },
  DOMAIN_MISSING: {
    status: 409,
    kind: ErrorKind.User,
    summary: "The VM's libvirt domain was removed outside qubes-bus; it is not silently made anew.",
  },
  DOMAIN_CONFLICT: {
    status: 409,
    kind: ErrorKind.User,
    summary: "Another libvirt domain, with another UUID, has the VM's name.",
  },
  PROPERTY_UNKNOWN: {
    status: 404,
    kind: ErrorKind.User,
    summary: 'The VM (or the system) has no property of that name.',
  },
  PROPERTY_TYPE_INVALID: {
    status: 400,
    kind: ErrorKind.User,
    summary: 'The value is not of the property type (an int, a bool, a VM name, ...).',
  },
  PROPERTY_VALUE_INVALID: {
    status: 400,
    kind: ErrorKind.User,
    summary: "The value is of the right type but not allowed (a netvm that provides no network, memory 0, ...).",
  },
  PROPERTY_READ_ONLY: {
    status: 403,
    kind: ErrorKind.User,
    summary: 'The property cannot be changed: identity (name, qid, uuid) is write-once, some are computed.',
  },
  NETVM_LOOP: {
    status: 400,
    kind: ErrorKind.User,
    summary: 'The netvm would route traffic back through the VM itself.',
  },
  TEMPLATE_CLASS_INVALID: {
    status: 400,
    kind: ErrorKind.User,
    summary: 'The template is of the wrong class (an AppVM needs a TemplateVM; a DispVM an AppVM with template_for_dispvms).',
  },
  FEATURE_NOT_FOUND: {
    status: 404,
    kind: ErrorKind.User,
    summary: 'The VM (nor its template or netvm, for the Check calls) has no such feature.',
  },
  TAG_NOT_FOUND: {
    status: 404,
    kind: ErrorKind.User,
    summary: 'The VM has no such tag.',
  },
  LABEL_NOT_FOUND: {
    status: 404,
    kind: ErrorKind.User,
    summary: 'No label of that name exists.',
  },
  LABEL_EXISTS: {
    status: 409,
    kind: ErrorKind.User,
    summary: 'A label of that name exists already.',
  },
  LABEL_IN_USE: {
    status: 409,
    kind: ErrorKind.User,
    summary: 'The label is used by VMs (details name them), or is one of the eight built-in labels.',
  },
  CONFLICT: {
    status: 409,
    kind: ErrorKind.User,
    summary: 'The VM changed since the revision the write carried; details.revision is the current one.',
  },
  LIMIT_REACHED: {
    status: 507,
    kind: ErrorKind.User,
    summary: 'No qid (or dispid) is left to allocate.',
  },
  STORE_MODIFIED_EXTERNALLY: {
    status: 409,
    kind: ErrorKind.User,
    summary: 'qubes.xml was changed by something else since the registry read it; it is not overwritten. Restart the registry to load it.',
  },
  STORE_MISSING: {
    status: 500,
    kind: ErrorKind.User,
    summary: 'There is no qubes.xml where one is expected; a left backup is not silently replaced by an empty store.',
  },
  STORE_LOCKED: {
    status: 423,
    kind: ErrorKind.User,
    summary: 'Another process (a running vm-registry) holds qubes.xml; offline tools refuse to touch it.',
  },
  STORE_WRITE_FAILED: {
    status: 507,
    kind: ErrorKind.User,
    summary: 'qubes.xml could not be written (disk full, I/O error); the change was undone and qubes.xml is as it was.',
  },
  STORE_MALFORMED: {
    status: 500,
    kind: ErrorKind.User,
    summary: 'qubes.xml cannot be parsed; it is left untouched and the position of the fault is given.',
  },
  POOL_NOT_FOUND: {
    status: 404,
    kind: ErrorKind.User,
    summary: 'No storage pool of that name exists.',
  },
  POOL_EXISTS: {
    status: 409,
    kind: ErrorKind.User,
    summary: 'A storage pool of that name exists already.',
  },
  POOL_DRIVER_UNKNOWN: {
    status: 400,
    kind: ErrorKind.User,
    summary: 'No pool driver of that name (file-reflink, file, lvm_thin).',
  },
  POOL_INVALID: {
    status: 400,
    kind: ErrorKind.User,
    summary: 'The pool cannot be set up as given: a missing or bad option, a path that does not exist.',
  },
  POOL_IN_USE: {
    status: 409,
    kind: ErrorKind.User,
    summary: 'The pool still holds volumes, or is a default pool; details name them.',
  },
  VOLUME_NOT_FOUND: {
    status: 404,
    kind: ErrorKind.User,
    summary: 'The VM has no volume of that name, or it has none (the class has no such image).',
  },
  VOLUME_SHRINK_REFUSED: {
    status: 400,
    kind: ErrorKind.User,
    summary: 'A volume can only grow; shrinking would cut the filesystem inside.',
  },
  VOLUME_READ_ONLY: {
    status: 409,
    kind: ErrorKind.User,
    summary: "The volume is not rw (a kernel volume, a template's root seen from an AppVM).",
  },
  VOLUME_NOT_PERSISTENT: {
    status: 409,
    kind: ErrorKind.User,
    summary: 'The volume keeps no data between runs (not save_on_stop): nothing to import, export or revert.',
  },
  VOLUME_TOO_BIG: {
    status: 413,
    kind: ErrorKind.User,
    summary: 'The data sent is larger than the size declared for it (or than the volume).',
  },
  VOLUME_IMPORT_SHORT: {
    status: 400,
    kind: ErrorKind.User,
    summary: 'The import ended before the declared size was sent.',
  },
  VOLUME_DATA_MISSING: {
    status: 409,
    kind: ErrorKind.User,
    summary: "A volume's image file is missing (removed outside qubes-bus).",
  },
  REVISION_NOT_FOUND: {
    status: 404,
    kind: ErrorKind.User,
    summary: 'The volume has no revision of that name (or none at all).',
  },
  STORAGE_FULL: {
    status: 507,
    kind: ErrorKind.User,
    summary: "The pool's filesystem is full; the partial volume was removed.",
  },
  STORAGE_COMMAND_FAILED: {
    status: 500,
    kind: ErrorKind.User,
    summary: 'A storage command (cp, dmsetup, lvcreate, ...) failed; the message gives its output.',
  },
  OPERATION_CANCELLED: {
    status: 499,
    kind: ErrorKind.User,
    summary: 'The operation was cancelled; what it had made was removed.',
  },
  DEPENDENCY_MISSING: {
    status: 500,
    kind: ErrorKind.User,
    summary: 'A program qubes-bus needs is not installed; the message names the Debian package.',
  },
  INTERNAL: {
    status: 500,
    kind: ErrorKind.Internal,
    summary: 'An unexpected failure inside a service; its log holds the stack under the request id.',
  },
  BUS_UNREACHABLE: {
    status: 503,
    kind: ErrorKind.Transport,
    summary: 'The NATS server cannot be reached at the configured URL.',
  },
  SERVICE_UNAVAILABLE: {
    status: 503,
    kind: ErrorKind.Transport,
    summary: 'The bus is up but no service answers that subject (the service is not running).',
  },
  EVENT_NOT_STORED: {
    status: 503,
    kind: ErrorKind.Transport,
    summary: 'The event stream did not confirm an event within 30 s (the bus was down or the stream is missing).',
  },
  TIMEOUT: {
    status: 504,
    kind: ErrorKind.Transport,
    summary: 'The service did not answer in time.',
  },
} as const satisfies Record<string, CatalogEntry>;

export type ErrorCode = keyof typeof ERROR_CATALOG;

export function isErrorCode(untrusted: unknown): untrusted is ErrorCode {
  return typeof untrusted === 'string' && Object.hasOwn(ERROR_CATALOG, untrusted);
}

/** The body of an error reply on the wire. */
export interface ErrorBody {
  code: ErrorCode;
  message: string;
  details?: Record<string, unknown>;
}

/**
 * A failure with a catalog code. Thrown by handlers for user errors, rebuilt by the bus client
 * from error replies, so callers on both sides test `err.code`.
 */
export class QubesError extends Error {
  override name = 'QubesError';
  readonly code: ErrorCode;
  readonly details: Record<string, unknown> | undefined;
  /** Raised by another service and carried back over the bus, rather than raised here. */
  readonly remote: boolean;

  constructor(
    code: ErrorCode,
    message: string,
    options: { details?: Record<string, unknown>; cause?: unknown; remote?: boolean } = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.details = options.details;
    this.remote = options.remote ?? false;
  }

  get status(): number {
    return ERROR_CATALOG[this.code].status;
  }

  get kind(): ErrorKind {
    return ERROR_CATALOG[this.code].kind;
  }

  toBody(): ErrorBody {
    return this.details === undefined
      ? { code: this.code, message: this.message }
      : { code: this.code, message: this.message, details: this.details };
  }
}

export function isQubesError(err: unknown, code?: ErrorCode): err is QubesError {
  return err instanceof QubesError && (code === undefined || err.code === code);
}
