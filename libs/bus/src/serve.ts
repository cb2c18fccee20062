import { headers as natsHeaders, nuid } from '@nats-io/nats-core';
import { Svcm, type Service, type ServiceMsg } from '@nats-io/services';
import {
  API_PREFIX,
  isQubesError,
  QubesError,
  REQUEST_ID_HEADER,
  vmNameFromToken,
  type Endpoint,
  type ReplyOf,
  type RequestInputOf,
  type RequestOf,
  type ServiceName,
} from '@qubes-bus/contracts';
import { requestLogger, type Logger } from '@qubes-bus/log';
import type { Bus, RequestOptions } from './bus';
import { badRequestFromIssues, decodeRequestBody, encodeJson, headerSafe } from './wire';

export interface ServiceOptions {
  version: string;
  description: string;
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

export type Handler<E extends Endpoint> = (request: RequestOf<E>, ctx: HandlerContext) => ReplyOf<E> | Promise<ReplyOf<E>>;

export interface BusService {
  readonly name: ServiceName;
  /** Answers `endpoint` with `handler`; every failure becomes an error reply, never a crash. */
  serve<E extends Endpoint>(endpoint: E, handler: Handler<E>): void;
  /** Stops taking requests, and resolves once every request already taken is answered. */
  stop(): Promise<void>;
  readonly service: Service;
}

export async function createBusService(bus: Bus, name: ServiceName, options: ServiceOptions): Promise<BusService> {
  const service = await new Svcm(bus.nc).add({
    name,
    version: options.version,
    description: options.description,
    queue: name,
  });
  const log = bus.log;
  // Requests being answered: stop() waits for them, so none is cut off by a drain.
  const inFlight = new Set<Promise<void>>();
  return {
    name,
    service,
    serve(endpoint, handler) {
      if (endpoint.service !== name) {
        throw new Error(`${endpoint.method} belongs to ${endpoint.service}, not ${name}`);
      }
      service.addEndpoint(endpoint.method.replaceAll('.', '_'), {
        subject: endpoint.pattern,
        metadata: { method: endpoint.method, kind: endpoint.kind },
        handler: (err, msg) => {
          if (err !== null) {
            log.error({ err, endpoint: endpoint.method }, 'endpoint subscription failed');
            return;
          }
          const done = answer(bus, endpoint, handler, msg, log)
            .catch((failure: unknown) => log.error({ err: failure, subject: msg.subject }, 'could not send a reply'))
            .finally(() => inFlight.delete(done));
          inFlight.add(done);
        },
      });
    },
    async stop() {
      await service.stop();
      await Promise.all(inFlight);
    },
  };
}

/**
 * One request, start to finish. Failures are sorted at this edge: a QubesError is a user error
 * or a bad request and goes back as it is; anything else is a bug, logged with its stack and
 * answered as INTERNAL, and the service goes on serving.
 */
async function answer<E extends Endpoint>(bus: Bus, endpoint: E, handler: Handler<E>, msg: ServiceMsg, root: Logger): Promise<void> {
  const reqId = msg.headers?.get(REQUEST_ID_HEADER) || nuid.next();
  // The child logger is made on first use: most requests never log, and making one costs more
  // than answering a small request (pino applies redaction to its bindings).
  let child: Logger | undefined;
  const log = (): Logger => (child ??= requestLogger(root, { reqId, subject: msg.subject }));
  const debug = root.isLevelEnabled('debug');
  const started = debug ? process.hrtime.bigint() : 0n;
  try {
    if (msg.data.length > endpoint.maxRequestBytes) {
      throw new QubesError('PAYLOAD_TOO_LARGE', `the request is ${msg.data.length} bytes; ${endpoint.method} takes at most ${endpoint.maxRequestBytes}`, {
        details: { size: msg.data.length, limit: endpoint.maxRequestBytes },
      });
    }
    const untrustedBody = decodeRequestBody(msg.data);
    const parsed = endpoint.request.safeParse(untrustedBody);
    if (!parsed.success) throw badRequestFromIssues(parsed.error.issues);
    const dest = endpoint.kind === 'api' ? destOf(msg.subject) : undefined;
    const ctx: HandlerContext = {
      reqId,
      get log() {
        return log();
      },
      subject: msg.subject,
      dest,
      request: (next, body, options = {}) => bus.request(next, body, { ...options, reqId }),
    };
    const result = await handler(parsed.data as RequestOf<E>, ctx);
    const checked = endpoint.reply.safeParse(result);
    if (!checked.success) {
      throw new Error(`${endpoint.method} handler returned a reply that breaks its contract: ${checked.error.message}`);
    }
    // No headers on a success: the caller knows its request id, and headers cost more to
    // encode and parse than a small reply.
    msg.respond(encodeJson(checked.data));
    if (debug) log().debug({ ms: elapsedMs(started) }, 'answered');
  } catch (err) {
    const failure = sortFailure(err, endpoint, reqId, log());
    const replyHeaders = natsHeaders();
    replyHeaders.set(REQUEST_ID_HEADER, reqId);
    msg.respondError(failure.status, headerSafe(failure.message), encodeJson(failure.toBody()), { headers: replyHeaders });
    if (debug) log().debug({ ms: elapsedMs(started), code: failure.code }, 'answered with an error');
  }
}

function sortFailure(err: unknown, endpoint: Endpoint, reqId: string, log: Logger): QubesError {
  if (isQubesError(err) && err.kind === 'user') {
    // Raised here, or by a service this handler called (no such VM is no such VM either way).
    log.info({ code: err.code, msg: err.message, remote: err.remote }, 'request refused');
    return err;
  }
  if (isQubesError(err) && err.kind === 'bad-request' && !err.remote) {
    log.info({ code: err.code, msg: err.message }, 'bad request');
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
function destOf(subject: string): string {
  return vmNameFromToken(subject.slice(API_PREFIX.length + 1).split('.', 1)[0] ?? '');
}

function elapsedMs(started: bigint): number {
  return Number(process.hrtime.bigint() - started) / 1e6;
}
