import { headers as natsHeaders } from '@nats-io/nats-core';
import { Svcm, type Service, type ServiceMsg } from '@nats-io/services';
import { REQUEST_ID_HEADER, type Endpoint, type ServiceName } from '@qubes-bus/contracts';
import type { Logger } from '@qubes-bus/log';
import type { Bus } from './bus';
import { assertServes, handleRequest, type Handler, type Router } from './handle';
import { encodeJson, headerSafe } from './wire';

export interface ServiceOptions {
  version: string;
  description: string;
}

export interface BusService extends Router {
  readonly name: ServiceName;
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
    // `nats micro stats` shows, beside each endpoint's counts, the events this service could not
    // have stored (Bus.emit): a lost event is never silent.
    statsHandler: () => Promise.resolve({ events_not_stored: bus.eventsNotStored }),
  });
  const log = bus.log;
  // Requests being answered: stop() waits for them, so none is cut off by a drain.
  let inFlight = 0;
  let idle: (() => void) | undefined;
  const answered = (): void => {
    if (--inFlight === 0) idle?.();
  };
  return {
    name,
    service,
    serve(endpoint, handler) {
      assertServes(name, endpoint);
      service.addEndpoint(endpoint.method.replaceAll('.', '_'), {
        subject: endpoint.pattern,
        metadata: { method: endpoint.method, kind: endpoint.kind },
        handler: (err, msg) => {
          if (err !== null) {
            log.error({ err, endpoint: endpoint.method }, 'endpoint subscription failed');
            return;
          }
          inFlight++;
          void answer(bus, endpoint, handler, msg, log).then(answered);
        },
      });
    },
    async stop() {
      await service.stop();
      if (inFlight > 0) await new Promise<void>((resolve) => (idle = resolve));
    },
  };
}

/**
 * Answers one NATS request: the reply, or an error reply by the NATS services convention.
 * Never rejects: a reply that cannot be sent (the connection closing) is logged.
 */
async function answer<E extends Endpoint>(bus: Bus, endpoint: E, handler: Handler<E>, msg: ServiceMsg, log: Logger): Promise<void> {
  try {
    const reqId = msg.headers?.get(REQUEST_ID_HEADER);
    const outcome = await handleRequest(endpoint, handler, { subject: msg.subject, data: msg.data, reqId }, log, bus);
    if (outcome.ok) {
      // No headers on a success: the id matters to a caller only when something failed, and
      // headers cost more to encode and parse than a small reply.
      msg.respond(outcome.data);
      return;
    }
    const replyHeaders = natsHeaders();
    replyHeaders.set(REQUEST_ID_HEADER, outcome.reqId);
    const { error } = outcome;
    msg.respondError(error.status, headerSafe(error.message), encodeJson(error.toBody()), { headers: replyHeaders });
  } catch (err) {
    log.error({ err, subject: msg.subject }, 'could not send a reply');
  }
}
