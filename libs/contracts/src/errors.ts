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
  STORE_MALFORMED: {
    status: 500,
    kind: ErrorKind.User,
    summary: 'qubes.xml cannot be parsed; it is left untouched and the position of the fault is given.',
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
