import { describe, expect, it } from '@jest/globals';
import { spawn } from 'node:child_process';
import { exited, pidAlive, terminate, waitFor } from './process';

describe('process helpers', () => {
  it('waitFor returns the first defined value, and names what it waited for on timeout', async () => {
    let calls = 0;
    expect(await waitFor('three calls', () => (++calls === 3 ? 'ready' : undefined), { intervalMs: 1 })).toBe('ready');
    await expect(waitFor('the impossible', () => undefined, { timeoutMs: 30, intervalMs: 5 })).rejects.toThrow(
      'timed out after 30 ms waiting for the impossible',
    );
  });

  it('terminate escalates to SIGKILL for a child that ignores SIGTERM, and pidAlive sees it gone', async () => {
    const stubborn = spawn(process.execPath, ['-e', "process.on('SIGTERM', () => {}); setInterval(() => {}, 1000); console.log('up')"], {
      stdio: ['ignore', 'pipe', 'ignore'],
    });
    await new Promise((resolve) => stubborn.stdout!.once('data', resolve));
    expect(pidAlive(stubborn.pid!)).toBe(true);
    await terminate(stubborn, 'SIGTERM', 200);
    await exited(stubborn);
    expect(stubborn.signalCode).toBe('SIGKILL');
    expect(pidAlive(stubborn.pid!)).toBe(false);
  });
});
