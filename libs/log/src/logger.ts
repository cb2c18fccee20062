import pino, { type DestinationStream, type Logger } from 'pino';

export type { Logger };

/** Keys whose values never reach a log, at whatever depth of the logged object. */
export const SECRET_KEY = /^(pass|password|passphrase|passwd|secret|token|jwt|nkey|seed|creds|credentials?|private_?key|authorization|key_material)$/i;
const CENSORED = '[redacted]';
const MAX_DEPTH = 32;

/**
 * A copy of `value` with every secret-named key censored, copying only the objects on the
 * way to a secret (a log line without secrets costs one walk and no allocation).
 */
export function censorSecrets(value: unknown, depth = 0, seen = new WeakSet<object>()): unknown {
  if (value === null || typeof value !== 'object' || value instanceof Error || depth > MAX_DEPTH) return value;
  if (seen.has(value)) return value;
  seen.add(value);
  if (Array.isArray(value)) {
    let copy: unknown[] | undefined;
    value.forEach((item, i) => {
      const censored = censorSecrets(item, depth + 1, seen);
      if (censored !== item) (copy ??= [...value])[i] = censored;
    });
    return copy ?? value;
  }
  let copy: Record<string, unknown> | undefined;
  for (const [key, item] of Object.entries(value)) {
    const censored = SECRET_KEY.test(key) ? CENSORED : censorSecrets(item, depth + 1, seen);
    if (censored !== item) (copy ??= { ...(value as Record<string, unknown>) })[key] = censored;
  }
  return copy ?? value;
}

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
      formatters: { log: (object) => censorSecrets(object) as Record<string, unknown> },
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
