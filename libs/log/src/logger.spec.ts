import { describe, expect, it } from '@jest/globals';
import { Writable } from 'node:stream';
import { createLogger, requestLogger } from './logger';

function capture(): { stream: Writable; lines: () => Array<Record<string, unknown>> } {
  const chunks: string[] = [];
  const stream = new Writable({
    write(chunk, _enc, done) {
      chunks.push(String(chunk));
      done();
    },
  });
  return { stream, lines: () => chunks.join('').trim().split('\n').map((l) => JSON.parse(l)) };
}

describe('createLogger', () => {
  it('writes JSON lines naming the service, and hides passphrases and tokens', () => {
    const out = capture();
    const log = createLogger('backup', { destination: out.stream, level: 'info' });
    log.info(
      { passphrase: 'hunter2', job: { target: '/backups', passphrase: 'hunter2' }, untrusted: { auth: { token: 'abc' } } },
      'backup started',
    );
    const [line] = out.lines();
    expect(line).toMatchObject({ service: 'backup', msg: 'backup started', level: 30 });
    expect(JSON.stringify(line)).not.toContain('hunter2');
    expect(JSON.stringify(line)).not.toContain('abc');
    expect(line?.['job']).toEqual({ target: '/backups', passphrase: '[redacted]' });
  });

  it('hides secrets however deep, in arrays too, and leaves the caller\'s object alone', () => {
    const out = capture();
    const log = createLogger('backup', { destination: out.stream });
    const untrusted = { payload: { backup: { target: { passphrase: 'deep-secret', path: '/b' } } }, users: [{ name: 'a', password: 'pw' }] };
    log.info({ untrusted, nkey: 'SUAM', creds: 'x', Token: 'y' }, 'request');
    const text = JSON.stringify(out.lines()[0]);
    for (const secret of ['deep-secret', '"pw"', 'SUAM', '"x"', '"y"']) expect(text).not.toContain(secret);
    expect(out.lines()[0]?.['untrusted']).toEqual({
      payload: { backup: { target: { passphrase: '[redacted]', path: '/b' } } },
      users: [{ name: 'a', password: '[redacted]' }],
    });
    expect(untrusted.payload.backup.target.passphrase).toBe('deep-secret');
  });

  it('binds a child logger to one request id and subject, and serialises errors with their stack', () => {
    const out = capture();
    const root = createLogger('vm-registry', { destination: out.stream });
    const log = requestLogger(root, { reqId: 'r-1', subject: 'qubes.api.dom0.admin.vm.List' });
    log.error({ err: new Error('disk full') }, 'save failed');
    const [line] = out.lines();
    expect(line).toMatchObject({ reqId: 'r-1', subject: 'qubes.api.dom0.admin.vm.List', service: 'vm-registry' });
    expect(line?.['err']).toMatchObject({ type: 'Error', message: 'disk full' });
    expect(String((line?.['err'] as { stack: string }).stack)).toContain('logger.spec.ts');
  });

  it('honours the level', () => {
    const out = capture();
    const log = createLogger('qvm', { destination: out.stream, level: 'warn' });
    log.info('hidden');
    log.warn('shown');
    expect(out.lines().map((l) => l['msg'])).toEqual(['shown']);
  });
});
