import {
  headers as natsHeaders,
  NoRespondersError,
  RequestError,
  TimeoutError,
  type MsgHdrs,
  type NatsConnection,
} from '@nats-io/nats-core';
import {
  QubesError,
  REQUEST_ID_HEADER,
  type Endpoint,
  type EventDescriptor,
  type EventFieldsOf,
  type ReplyOf,
  type RequestInputOf,
  type ServiceName,
} from '@qubes-bus/contracts';
import type { Logger } from '@qubes-bus/log';
import { connectNats, type ConnectOptions } from './connect';
import type { EventSubscription, SubscribeOptions } from './events';
import { typedEvents, type TypedEventSubscription } from './typed-events';
import type { RequestOptions, Requester } from './handle';
import type { BusService, ServiceOptions } from './serve';
import { encodeJson, errorFromReply } from './wire';


export const DEFAULT_REQUEST_TIMEOUT_MS = 30_000;

const decoder = new TextDecoder();

/** One connection to the bus and everything done over it. */
export class Bus implements Requester {
  constructor(
    readonly nc: NatsConnection,
    readonly log: Logger,
  ) {}

  /**
   * Calls an endpoint and returns its validated reply. Failures come back as QubesError with the
   * code the service raised, or a transport code: SERVICE_UNAVAILABLE when nobody serves the
   * subject, TIMEOUT, BUS_UNREACHABLE, PAYLOAD_TOO_LARGE when the body exceeds what the server
   * takes (it is then never sent).
   */
  async request<E extends Endpoint>(endpoint: E, body: RequestInputOf<E>, options: RequestOptions = {}): Promise<ReplyOf<E>> {
    const subject = endpoint.subject(options.dest ?? 'dom0');
    const data = encodeJson(body);
    const maxPayload = this.nc.info?.max_payload;
    if (maxPayload !== undefined && data.length > maxPayload) {
      throw new QubesError('PAYLOAD_TOO_LARGE', `the request is ${data.length} bytes; the bus takes at most ${maxPayload}`, {
        details: { size: data.length, limit: maxPayload },
      });
    }
    // The id travels only where there is one to carry on (an onward call); a call that starts
    // here gets its id from the service that takes it, which puts it in every log line and in
    // an error reply. A header costs more to encode and parse than a small request.
    let headers: MsgHdrs | undefined;
    if (options.reqId !== undefined) {
      headers = natsHeaders();
      headers.set(REQUEST_ID_HEADER, options.reqId);
    }
    let reply;
    try {
      reply = await this.nc.request(subject, data, { timeout: options.timeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS, headers });
    } catch (err) {
      throw transportError(err, endpoint, subject);
    }
    const failure = errorFromReply(reply);
    if (failure !== undefined) throw failure;
    let untrustedReply: unknown;
    try {
      untrustedReply = JSON.parse(decoder.decode(reply.data));
    } catch (err) {
      throw new QubesError('INTERNAL', `${endpoint.method} answered with a body that is not JSON`, { cause: err });
    }
    const parsed = endpoint.reply.safeParse(untrustedReply);
    if (!parsed.success) {
      throw new QubesError('INTERNAL', `${endpoint.method} answered with a reply that does not match its contract`, {
        cause: parsed.error,
      });
    }
    return parsed.data as ReplyOf<E>;
  }

  private publisher: Promise<import('./events').EventPublisher> | undefined;

  /**
   * Publishes an event on its subject (`qubes.vm.<vm>.<event>[.<qualifier>]`) and resolves with
   * its stream sequence once the stream has stored it. Events of one connection are stored in
   * the order they were published, each once, many in flight at once; through a server restart
   * the failed ones are sent again (EVENT_NOT_STORED after 30 s). Fields are checked against
   * the descriptor: a mismatch is a bug, thrown at once.
   */
  publish<E extends EventDescriptor>(event: E, target: { vm?: string; qualifier?: string }, fields: EventFieldsOf<E>): Promise<number> {
    const subject = event.subject(target);
    const checked = event.fields.parse(fields) as Record<string, unknown>;
    const message = {
      ...checked,
      ...(target.vm === undefined ? {} : { vm: target.vm }),
      event: event.qubesName(target.qualifier),
      ts: new Date().toISOString(),
    };
    const data = encodeJson(message);
    this.publisher ??= loadEvents().then(({ EventPublisher }) => new EventPublisher(this.nc));
    return this.publisher.then((publisher) => publisher.publish(subject, data));
  }

  private notStored = 0;

  /** Events emit() could not have stored since this connection was made. */
  get eventsNotStored(): number {
    return this.notStored;
  }

  /**
   * Publishes an event whose publisher goes on whatever becomes of it, the one way every
   * service treats a lost event: logged at warn with its subject, and counted
   * (`eventsNotStored`); never thrown, never silent. The change it tells of is made already.
   */
  emit<E extends EventDescriptor>(event: E, target: { vm?: string; qualifier?: string }, fields: EventFieldsOf<E>): void {
    this.publish(event, target, fields).catch((err: unknown) => {
      this.notStored++;
      this.log.warn({ err, event: event.qubesName(target.qualifier), vm: target.vm, notStored: this.notStored }, 'an event was not stored');
    });
  }

  /** Creates (or brings up to date) the event stream; idempotent, safe from every service. */
  async ensureEventStream(): Promise<void> {
    const { ensureEventStream } = await loadEvents();
    return ensureEventStream(this.nc);
  }

  /**
   * Events matching `pattern`, from the stream: those after sequence `after` when given (to
   * resume where a previous subscription stopped), else those published from now on.
   */
  async subscribe(pattern: string, options: SubscribeOptions = {}): Promise<EventSubscription> {
    const { subscribeEvents } = await loadEvents();
    return subscribeEvents(this.nc, pattern, options);
  }

  /**
   * Events of one kind, each checked against its descriptor and typed by it: of one VM or all
   * (`target.vm`), of one qualifier or all; resumes after `options.after` as subscribe() does.
   */
  async events<E extends EventDescriptor>(event: E, target: { vm?: string; qualifier?: string } = {}, options: SubscribeOptions = {}): Promise<TypedEventSubscription<E>> {
    return typedEvents(await this.subscribe(event.pattern(target), options), event, this.log);
  }

  /** Registers a NATS micro service (one queue group per service) to serve endpoints on. */
  async createService(name: ServiceName, options: ServiceOptions): Promise<BusService> {
    const { createBusService } = await import('./serve');
    return createBusService(this, name, options);
  }

  /** Lets in-flight work finish (events being stored too, for a while), then closes (drain). */
  async close(): Promise<void> {
    if (this.nc.isClosed()) return;
    if (this.publisher !== undefined) {
      const publisher = await this.publisher;
      await Promise.race([publisher.settled(), new Promise((resolve) => setTimeout(resolve, 5_000).unref())]);
    }
    try {
      await this.nc.drain();
    } catch {
      await this.nc.close();
    }
  }
}

/** JetStream is loaded on first use (like the service side): a tool that only makes requests never pays for it. */
function loadEvents(): Promise<typeof import('./events')> {
  return import('./events');
}

export async function connectBus(options: ConnectOptions): Promise<Bus> {
  const nc = await connectNats(options);
  return new Bus(nc, options.log);
}

function transportError(err: unknown, endpoint: Endpoint, subject: string): QubesError {
  const cause = err;
  if (err instanceof RequestError && err.isNoResponders()) err = err.cause ?? new NoRespondersError(subject);
  if (err instanceof NoRespondersError) {
    return new QubesError('SERVICE_UNAVAILABLE', `no service answers ${endpoint.method}: is ${endpoint.service} running?`, {
      cause,
      details: { subject, service: endpoint.service },
    });
  }
  if (err instanceof TimeoutError || (err instanceof RequestError && /timeout/i.test(err.message))) {
    return new QubesError('TIMEOUT', `${endpoint.service} did not answer ${endpoint.method} in time`, {
      cause,
      details: { subject, service: endpoint.service },
    });
  }
  const reason = err instanceof Error ? err.message : String(err);
  return new QubesError('BUS_UNREACHABLE', `cannot send ${endpoint.method} over the bus: ${reason}`, { cause });
}
