import { Writable } from 'node:stream';
import { createLogger, type Logger } from '@qubes-bus/log';

export interface CapturedLog {
  readonly log: Logger;
  /** Every JSON line written so far, parsed. */
  lines(): Array<Record<string, unknown>>;
}

/** A real pino logger of the project's own making, writing into memory for assertions. */
export function captureLog(service: string, level = 'debug'): CapturedLog {
  const chunks: string[] = [];
  const stream = new Writable({
    write(chunk, _encoding, done) {
      chunks.push(String(chunk));
      done();
    },
  });
  const log = createLogger(service, { destination: stream, level });
  return {
    log,
    lines: () =>
      chunks
        .join('')
        .split('\n')
        .filter((line) => line !== '')
        .map((line) => JSON.parse(line) as Record<string, unknown>),
  };
}
