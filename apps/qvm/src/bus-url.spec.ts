import { describe, expect, it } from '@jest/globals';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { tmpDataDir } from '@qubes-bus/testing';
import { resolveBusUrl } from './bus-url';

describe('resolveBusUrl', () => {
  it('prefers QUBES_NATS_URL, then the embedded stack’s var/nats.url, then the local default', () => {
    const varDir = tmpDataDir();
    try {
      expect(resolveBusUrl({ QUBES_VAR_DIR: varDir.path })).toEqual({ url: 'nats://127.0.0.1:4222', source: 'the default' });
      writeFileSync(path.join(varDir.path, 'nats.url'), 'nats://127.0.0.1:41234\n');
      expect(resolveBusUrl({ QUBES_VAR_DIR: varDir.path })).toEqual({
        url: 'nats://127.0.0.1:41234',
        source: path.join(varDir.path, 'nats.url'),
      });
      expect(resolveBusUrl({ QUBES_VAR_DIR: varDir.path, QUBES_NATS_URL: ' nats://bus.example:4222 ' })).toEqual({
        url: 'nats://bus.example:4222',
        source: 'QUBES_NATS_URL',
      });
    } finally {
      varDir.remove();
    }
  });

});
