import { describe, expect, it } from '@jest/globals';
import { redactUrl, serverOptions } from './connect';

describe('bus URLs', () => {
  it('takes credentials out of the URL, since the client wants them as options', () => {
    expect(serverOptions('nats://qubes:s%40cret@10.0.0.1:4222')).toEqual({
      servers: ['nats://10.0.0.1:4222'],
      user: 'qubes',
      pass: 's@cret',
    });
    expect(serverOptions('nats://a:4222, nats://b:4222')).toEqual({ servers: ['nats://a:4222', 'nats://b:4222'] });
    expect(serverOptions('127.0.0.1:4222')).toEqual({ servers: ['nats://127.0.0.1:4222'] });
  });

  it('refuses what is not a URL with BUS_UNREACHABLE, and never shows a password', () => {
    expect(() => serverOptions('nats://[::1')).toThrow("is not a NATS URL");
    expect(() => serverOptions(' , ')).toThrow('no NATS URL given');
    expect(redactUrl('nats://qubes:hunter2@bus:4222')).toBe('nats://qubes:***@bus:4222');
  });
});
