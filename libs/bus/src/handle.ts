import { nuid } from '@nats-io/nats-core';
import {
  API_PREFIX,
  isQubesError,
  QubesError,
  vmNameFromToken,
  type Endpoint,
  type ReplyOf,
  type RequestInputOf,
  type RequestOf,
  type ServiceName,
} from '@qubes-bus/contracts';
import { requestLogger, type Logger } from '@qubes-bus/log';
import { badRequestFromIssues, decodeRequestBody, encodeJson } from './wire';

export interface RequestOptions {
  /** Destination VM of an Admin API call; default `dom0`. */
  dest?: string;
  /** Default 30 s: some calls (start a VM, clone a volume) take a while. */
  timeoutMs?: number;
  /** Carried in `Qubes-Request-Id`; when absent, the service that takes the call makes one. */
  reqId?: string;
}

/** Whatever can call an endpoint: the bus, or (offline) a registry on a pipe. */
export interface Requester {
  request<E extends Endpoint>(endpoint: E, body: RequestInputOf<E>, options?: RequestOptions): Promise<ReplyOf<E>>;
}

/** What a handler gets besides the validated request. */
export interface HandlerContext {
  readonly reqId: string;
  /** Bound to `reqId` and the subject; untrusted data goes under one key (`untrusted`). */
  readonly log: Logger;
  readonly subject: string;
  /** The destination VM of an Admin API call (decoded from its token). */
  readonly dest: string | undefined;
  /** Calls another endpoint, passing this request's id on. */
  request<E extends Endpoint>(endpoint: E, body: RequestInputOf<E>, options?: Omit<RequestOptions, 'reqId'>): Promise<ReplyOf<E>>;
}

/**
 * An onward call to a service that need not run (offline, a stack without it): its reply, or
 * null when nobody serves the endpoint, which is logged. Any other failure is thrown. Called
 * through a handler's context (or with `reqId`), the call carries the caller's request id.
 */
export async function requestIfServed<E extends Endpoint>(
  requester: Requester,
  log: Logger,
  endpoint: E,
  body: RequestInputOf<E>,
  options: RequestOptions & { quiet?: boolean } = {},
): Promise<ReplyOf<E> | null> {
  const { quiet = false, ...requestOptions } = options;
  try {
    return await requester.request(endpoint, body, requestOptions);
  } catch (err) {
    if (!isQubesError(err, 'SERVICE_UNAVAILABLE')) throw err;
    log[quiet ? 'debug' : 'warn']({ service: endpoint.service, call: endpoint.method }, 'the service is not running; going on without it');
    return null;
  }
}

/** The destination VM of an Admin API call: every VM call has one (the router decoded it). */
export function destOf(ctx: Pick<HandlerContext, 'dest'>): string {
  if (ctx.dest === undefined) throw new QubesError('INTERNAL', 'a VM call without a destination');
  return ctx.dest;
}

export type Handler<E extends Endpoint> = (request: RequestOf<E>, ctx: HandlerContext) => ReplyOf<E> | Promise<ReplyOf<E>>;

/** A service serves its own endpoints only: another's is a bug, refused at registration. */
export function assertServes(name: ServiceName, endpoint: Endpoint): void {
  if (endpoint.service !== name) throw new Error(`${endpoint.method} belongs to ${endpoint.service}, not ${name}`);
}

/** Where handlers are registered: a NATS micro service, or a local router. */
export interface Router {
  serve<E extends Endpoint>(endpoint: E, handler: Handler<E>): void;
}

export interface Incoming {
  subject: string;
  data: Uint8Array;
  reqId: string | undefined;
}

export type Outcome = { ok: true; data: Uint8Array } | { ok: false; error: QubesError; reqId: string };

/**
 * One request, start to finish, whatever carried it. Failures are sorted here: a QubesError is
 * a user error or a bad request and goes back as it is; anything else is a bug, logged with its
 * stack and answered as INTERNAL. Nothing a caller sends can make this throw.
 */
export async function handleRequest<E extends Endpoint>(
  endpoint: E,
  handler: Handler<E>,
  incoming: Incoming,
  root: Logger,
  onward: Requester,
): Promise<Outcome> {
  const ctx = new RequestContext(incoming, root, onward);
  const debug = root.isLevelEnabled('debug');
  const started = debug ? process.hrtime.bigint() : 0n;
  try {
    if (incoming.data.length > endpoint.maxRequestBytes) {
      throw new QubesError('PAYLOAD_TOO_LARGE', `the request is ${incoming.data.length} bytes; ${endpoint.method} takes at most ${endpoint.maxRequestBytes}`, {
        details: { size: incoming.data.length, limit: endpoint.maxRequestBytes },
      });
    }
    const parsed = endpoint.request.safeParse(decodeRequestBody(incoming.data));
    if (!parsed.success) throw badRequestFromIssues(parsed.error.issues);
    if (endpoint.kind === 'api') ctx.dest = destFromSubject(incoming.subject);
    const result = await handler(parsed.data as RequestOf<E>, ctx);
    const checked = endpoint.reply.safeParse(result);
    if (!checked.success) {
      throw new Error(`${endpoint.method} handler returned a reply that breaks its contract: ${checked.error.message}`);
    }
    if (debug) ctx.log.debug({ ms: elapsedMs(started) }, 'answered');
    return { ok: true, data: encodeJson(checked.data) };
  } catch (err) {
    const error = sortFailure(err, endpoint, ctx.reqId, ctx.log);
    if (debug) ctx.log.debug({ ms: elapsedMs(started), code: error.code }, 'answered with an error');
    return { ok: false, error, reqId: ctx.reqId };
  }
}

/** One per request: a class, so that a request costs one small object and no closures. */
class RequestContext implements HandlerContext {
  readonly reqId: string;
  readonly subject: string;
  /** Set once the request is known to be well-formed (a bad destination is the caller's error). */
  dest: string | undefined;
  private child: Logger | undefined;

  constructor(
    incoming: Incoming,
    private readonly root: Logger,
    private readonly onward: Requester,
  ) {
    this.reqId = incoming.reqId || nuid.next();
    this.subject = incoming.subject;
  }

  /**
   * Made on first use: most requests never log, and making a child logger costs more than
   * answering a small request (its bindings are censored like every logged object).
   */
  get log(): Logger {
    return (this.child ??= requestLogger(this.root, { reqId: this.reqId, subject: this.subject }));
  }

  request<N extends Endpoint>(next: N, body: RequestInputOf<N>, options: Omit<RequestOptions, 'reqId'> = {}): Promise<ReplyOf<N>> {
    return this.onward.request(next, body, { ...options, reqId: this.reqId });
  }
}

function sortFailure(err: unknown, endpoint: Endpoint, reqId: string, log: Logger): QubesError {
  if (isQubesError(err) && err.kind === 'user') {
    // Raised here, or by a service this handler called (no such VM is no such VM either way).
    // The message may quote what the caller sent: untrusted, under its own key.
    log.info({ code: err.code, remote: err.remote, untrusted: { message: err.message } }, 'request refused');
    return err;
  }
  if (isQubesError(err) && err.kind === 'bad-request' && !err.remote) {
    log.info({ code: err.code, untrusted: { message: err.message } }, 'bad request');
    return err;
  }
  if (isQubesError(err) && err.kind === 'transport') {
    // An onward call could not be made: the caller sees which service was missing.
    log.warn({ err }, 'onward call failed');
    return err;
  }
  // A bug: here, or a malformed onward call (its BAD_REQUEST names a field of *our* request to
  // another service, which means nothing to our caller).
  log.error({ err, method: endpoint.method }, 'request failed unexpectedly');
  return new QubesError('INTERNAL', `internal error in ${endpoint.service} while handling ${endpoint.method} (request ${reqId})`, {
    details: { reqId },
  });
}

/** `qubes.api.<dest>.<method…>`: the destination token, decoded. */
function destFromSubject(subject: string): string {
  const from = API_PREFIX.length + 1;
  const end = subject.indexOf('.', from);
  return vmNameFromToken(subject.slice(from, end === -1 ? undefined : end));
}

function elapsedMs(started: bigint): number {
  return Number(process.hrtime.bigint() - started) / 1e6;
}
