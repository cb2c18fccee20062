export { Bus, connectBus, DEFAULT_REQUEST_TIMEOUT_MS } from './bus';
export type { RequestOptions } from './bus';
export { CLIENT_TUNING, connectNats, DEFAULT_NATS_URL, redactUrl, serverOptions } from './connect';
export type { ConnectOptions } from './connect';
export type { EventSubscription, ReceivedEvent, SubscribeOptions } from './events';
export type { BusService, Handler, HandlerContext, ServiceOptions } from './serve';
export { SERVICE_ERROR_CODE_HEADER, SERVICE_ERROR_HEADER } from './wire';
