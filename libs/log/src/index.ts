export { censorSecrets, createLogger, requestLogger, SECRET_KEY } from './logger';
export type { Logger, LoggerOptions, RequestBindings } from './logger';
