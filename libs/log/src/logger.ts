import pino, { type DestinationStream, type Logger } from 'pino';

export type { Logger };

/** Keys whose values never reach a log, at any of the first four levels of an object. */
export const REDACTED_KEYS = ['passphrase', 'password', 'token', 'secret', 'authorization', 'key_material'] as const;

const REDACT_PATHS = REDACTED_KEYS.flatMap((key) => [key, `*.${key}`, `*.*.${key}`, `*.*.*.${key}`]);

export interface LoggerOptions {
  /** pino level; default `LOG_LEVEL` from the environment, else `info`. */
  level?: string;
  /**
   * Human-readable lines (pino-pretty) instead of JSON. Default: `LOG_FORMAT=pretty|json` from the
   * environment, else pretty when the destination is a terminal.
   */
  pretty?: boolean;
  /** Where lines go: a file descriptor (default 1, stdout) or a stream (tests). */
  destination?: number | DestinationStream;
}

/** The root logger of one process; everything else is a child of it. */
export function createLogger(service: string, options: LoggerOptions = {}): Logger {
  const fd = typeof options.destination === 'number' ? options.destination : 1;
  const format = process.env['LOG_FORMAT'];
  const wantPretty =
    options.pretty ?? (format === 'pretty' ? true : format === 'json' ? false : typeof options.destination !== 'object' && isTerminal(fd));
  const stream: DestinationStream =
    typeof options.destination === 'object'
      ? options.destination
      : wantPretty
        ? prettyStream(fd)
        : pino.destination({ dest: fd, sync: true });
  return pino(
    {
      name: service,
      level: options.level ?? process.env['LOG_LEVEL'] ?? 'info',
      base: { service, pid: process.pid },
      redact: { paths: REDACT_PATHS, censor: '[redacted]' },
      serializers: { err: pino.stdSerializers.err },
      timestamp: pino.stdTimeFunctions.isoTime,
    },
    stream,
  );
}

/** pino-pretty is loaded only when wanted: a tool writing JSON, or nothing, never pays for it. */
function prettyStream(fd: number): DestinationStream {
  const pretty = require('pino-pretty') as typeof import('pino-pretty');
  return pretty({ destination: fd, colorize: isTerminal(fd), sync: true, translateTime: 'HH:MM:ss.l', ignore: 'pid,hostname' });
}

function isTerminal(fd: number): boolean {
  return (fd === 1 && process.stdout.isTTY === true) || (fd === 2 && process.stderr.isTTY === true);
}

export interface RequestBindings {
  reqId: string;
  subject: string;
  [key: string]: unknown;
}

/** A child logger bound to one request, so every line it writes names the request. */
export function requestLogger(parent: Logger, bindings: RequestBindings): Logger {
  return parent.child(bindings);
}
