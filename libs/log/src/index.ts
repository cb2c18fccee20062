export { createLogger, REDACTED_KEYS, requestLogger } from './logger';
export type { Logger, LoggerOptions, RequestBindings } from './logger';
