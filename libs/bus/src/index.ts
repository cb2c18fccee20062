export { Bus, connectBus, DEFAULT_REQUEST_TIMEOUT_MS } from './bus';
export { CLIENT_TUNING, connectNats, DEFAULT_NATS_URL, redactUrl, serverOptions } from './connect';
export type { ConnectOptions } from './connect';
export type { EventSubscription, ReceivedEvent, SubscribeOptions } from './events';
export type { BusService, ServiceOptions } from './serve';
export { handleRequest } from './handle';
export type { Handler, HandlerContext, Incoming, Outcome, RequestOptions, Requester, Router } from './handle';
export { SERVICE_ERROR_CODE_HEADER, SERVICE_ERROR_HEADER } from './wire';
export { LocalRouter, reportFatal, serveStdio, StdioRequester } from './stdio';
