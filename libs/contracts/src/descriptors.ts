import * as z from 'zod/mini';
import en from 'zod/v4/locales/en.js';
import type { ErrorCode } from './errors';
import { API_PREFIX, APP_EVENT_PREFIX, assertDottedName, Subjects, VM_EVENT_PREFIX, type ServiceName } from './subjects';
import { encodeToken, token } from './token';

/**
 * Each message is declared once: its schema, its subject and the errors it may raise, in a
 * descriptor that the serving side (`serve`) and the calling side (`request`) both use.
 */

// zod/mini keeps its start-up small by loading no messages: validation errors in English.
z.config(en());

/** Requests are at most this large unless an endpoint says otherwise. */
export const DEFAULT_MAX_REQUEST_BYTES = 256 * 1024;

/**
 * Which destinations an Admin API method takes: `dom0` for global calls only, `vm` for any VM
 * (dom0 included), as in Qubes' Admin API.
 */
export const DestScope = { Dom0: 'dom0', Vm: 'vm' } as const;
export type DestScope = (typeof DestScope)[keyof typeof DestScope];

type Schema = z.ZodMiniType;

/** An absent `arg`/`payload` schema means the field must be absent too. */
type FieldSchema<S> = [S] extends [Schema] ? S : z.ZodMiniOptional<z.ZodMiniUndefined>;
type RequestSchema<Arg, Payload> = z.ZodMiniObject<{ arg: FieldSchema<Arg>; payload: FieldSchema<Payload> }, z.core.$strict>;

export interface EndpointSpec<Arg extends Schema | undefined, Payload extends Schema | undefined, Reply extends Schema> {
  /** Admin API method (`admin.vm.List`) or internal op (`vm-pre-start`). */
  readonly method: string;
  readonly service: ServiceName;
  readonly summary: string;
  /** Schema of `arg`; an endpoint without one rejects any arg. */
  readonly arg?: Arg;
  /** Schema of `payload`; an endpoint without one rejects any payload. */
  readonly payload?: Payload;
  readonly reply: Reply;
  /** The user errors the handler may raise, besides BAD_REQUEST/PAYLOAD_TOO_LARGE/INTERNAL. */
  readonly errors: readonly ErrorCode[];
  readonly maxRequestBytes?: number;
}

export interface Endpoint<Request extends z.ZodMiniObject = z.ZodMiniObject, Reply extends Schema = Schema> {
  readonly kind: 'api' | 'internal';
  readonly method: string;
  readonly service: ServiceName;
  readonly summary: string;
  readonly scope: DestScope | 'none';
  /** `{ arg, payload }`, strict: unknown keys are a bad request. */
  readonly request: Request;
  readonly reply: Reply;
  readonly errors: readonly ErrorCode[];
  readonly maxRequestBytes: number;
  /** What the serving side subscribes to. */
  readonly pattern: string;
  /** The subject of one call; `dest` is required for API endpoints and ignored otherwise. */
  subject(dest?: string): string;
}

/** The request a handler receives (validated) and a caller sends. */
export type RequestOf<E extends Endpoint> = z.output<E['request']>;
export type RequestInputOf<E extends Endpoint> = z.input<E['request']>;
export type ReplyOf<E extends Endpoint> = z.output<E['reply']>;

function requestSchema<Arg extends Schema | undefined, Payload extends Schema | undefined>(
  arg: Arg | undefined,
  payload: Payload | undefined,
): RequestSchema<Arg, Payload> {
  const absent = z.optional(z.undefined());
  return z.strictObject({ arg: arg ?? absent, payload: payload ?? absent }) as unknown as RequestSchema<Arg, Payload>;
}

/** An Admin API method, served on `qubes.api.<dest>.<method>`. */
export function defineApi<
  Reply extends Schema,
  Arg extends Schema | undefined = undefined,
  Payload extends Schema | undefined = undefined,
>(spec: EndpointSpec<Arg, Payload, Reply> & { scope: DestScope }): Endpoint<RequestSchema<Arg, Payload>, Reply> {
  const method = assertDottedName('method', spec.method);
  return {
    kind: 'api',
    method,
    service: spec.service,
    summary: spec.summary,
    scope: spec.scope,
    request: requestSchema(spec.arg, spec.payload),
    reply: spec.reply,
    errors: spec.errors,
    maxRequestBytes: spec.maxRequestBytes ?? DEFAULT_MAX_REQUEST_BYTES,
    pattern: spec.scope === DestScope.Dom0 ? `${API_PREFIX}.dom0.${method}` : Subjects.apiAnyDest(method),
    subject(dest?: string): string {
      if (dest === undefined) throw new TypeError(`${method} needs a destination`);
      if (spec.scope === DestScope.Dom0 && dest !== 'dom0') {
        throw new TypeError(`${method} is a global call: its destination is dom0, not ${dest}`);
      }
      return `${API_PREFIX}.${token(dest)}.${method}`; // Subjects.api, the method checked above
    },
  };
}

/** A call between services, served on `qubes.internal.<service>.<op>`. */
export function defineInternal<
  Reply extends Schema,
  Arg extends Schema | undefined = undefined,
  Payload extends Schema | undefined = undefined,
>(spec: EndpointSpec<Arg, Payload, Reply>): Endpoint<RequestSchema<Arg, Payload>, Reply> {
  const subject = Subjects.internal(spec.service, spec.method);
  return {
    kind: 'internal',
    method: spec.method,
    service: spec.service,
    summary: spec.summary,
    scope: 'none',
    request: requestSchema(spec.arg, spec.payload),
    reply: spec.reply,
    errors: spec.errors,
    maxRequestBytes: spec.maxRequestBytes ?? DEFAULT_MAX_REQUEST_BYTES,
    pattern: subject,
    subject: () => subject,
  };
}

export interface EventSpec<Fields extends z.ZodMiniObject> {
  /** Qubes event name (`domain-start`, `property-set`); `:qualifier` is added per message. */
  readonly name: string;
  /** `vm` events go on `qubes.vm.<vm>.…`, `app` events on `qubes.app.…`. */
  readonly scope: 'vm' | 'app';
  /** What the qualifier holds (`property name`), when the event has one. */
  readonly qualifier?: string;
  readonly summary: string;
  readonly fields: Fields;
}

/** The envelope every event carries besides its own fields. */
export const eventEnvelope = z.object({
  vm: z.optional(z.string()),
  event: z.string(),
  ts: z.string(),
});
export type EventEnvelope = z.infer<typeof eventEnvelope>;

export interface EventDescriptor<Fields extends z.ZodMiniObject = z.ZodMiniObject> extends EventSpec<Fields> {
  /** The whole message: envelope plus fields. */
  readonly message: z.ZodMiniType<EventEnvelope & z.output<Fields>>;
  /** The subject of one event; `vm` for vm-scope events, `qualifier` when the event has one. */
  subject(target: { vm?: string; qualifier?: string }): string;
  /** The pattern matching this event, for one VM or all (`*`), for one qualifier or all. */
  pattern(target?: { vm?: string; qualifier?: string }): string;
  /** The Qubes event name with its qualifier: `property-set:netvm`. */
  qubesName(qualifier?: string): string;
}

export type EventFieldsOf<E extends EventDescriptor> = z.input<E['fields']>;
export type EventMessageOf<E extends EventDescriptor> = z.output<E['message']>;

/** `*` stands for "any" in a pattern; anything else is encoded. */
function eventSubject(scope: 'vm' | 'app', name: string, vm: string | undefined, qualifier: string | undefined): string {
  const head = scope === 'app' ? APP_EVENT_PREFIX : `${VM_EVENT_PREFIX}.${vm === '*' ? '*' : token(vm ?? '')}`;
  const tail = qualifier === undefined ? '' : `.${qualifier === '*' ? '*' : encodeToken(qualifier)}`;
  return `${head}.${name}${tail}`;
}

export function defineEvent<Fields extends z.ZodMiniObject>(spec: EventSpec<Fields>): EventDescriptor<Fields> {
  const name = assertDottedName('event', spec.name);
  const checkQualifier = (qualifier: string | undefined): void => {
    if ((spec.qualifier !== undefined) !== (qualifier !== undefined)) {
      throw new TypeError(
        spec.qualifier === undefined ? `event ${name} takes no qualifier` : `event ${name} needs a ${spec.qualifier}`,
      );
    }
  };
  return {
    ...spec,
    name,
    message: z.extend(eventEnvelope, spec.fields.shape) as unknown as z.ZodMiniType<EventEnvelope & z.output<Fields>>,
    subject({ vm, qualifier } = {}) {
      checkQualifier(qualifier);
      if (spec.scope === 'vm' && vm === undefined) throw new TypeError(`event ${name} is about a VM: name it`);
      return eventSubject(spec.scope, name, vm, qualifier);
    },
    pattern({ vm, qualifier } = {}) {
      return eventSubject(spec.scope, name, vm ?? '*', spec.qualifier === undefined ? undefined : (qualifier ?? '*'));
    },
    qubesName: (qualifier) => (qualifier === undefined ? name : `${name}:${qualifier}`),
  };
}
