import { afterEach, beforeEach, describe, expect, it } from '@jest/globals';
import { execFileSync, spawnSync } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { isLockBusy, lockFile, lockNowSync } from './lock';
import { tempPathFor } from './write';

let dir: string;
let file: string;

beforeEach(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'qubes-bus-durable-lock-'));
  file = path.join(dir, 'qubes.xml');
  writeFileSync(file, 'old');
});

afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

/** Resolves the next time `count` is called (for a locker to be seen waiting). */
function signal(): { count: () => void; next: () => Promise<void>; calls: number } {
  let wake: (() => void) | undefined;
  const s = {
    calls: 0,
    count: () => {
      s.calls++;
      wake?.();
    },
    next: () => new Promise<void>((resolve) => (wake = resolve)),
  };
  return s;
}

describe('lockFile', () => {
  it('refuses a second locker whose onBusy throws, and closes its file', async () => {
    const first = await lockFile(file);
    try {
      const refusal = new Error('held');
      await expect(lockFile(file, { onBusy: () => { throw refusal; } })).rejects.toBe(refusal);
    } finally {
      await first.close();
    }
    const again = await lockFile(file, { onBusy: () => { throw new Error('should be free now'); } });
    await again.close();
  });

  it('makes a second locker wait, off the event loop, until the first lets go', async () => {
    const first = await lockFile(file);
    const busy = signal();
    const seen = busy.next();
    let got = false;
    const second = lockFile(file, { onBusy: busy.count }).then((h) => ((got = true), h));
    await seen;
    await new Promise((resolve) => setTimeout(resolve, 100)); // the loop runs meanwhile
    expect(got).toBe(false);
    await first.close();
    const handle = await second;
    expect(busy.calls).toBe(1);
    await handle.close();
  });

  it('excludes another process: flock(1) cannot take the lock while a handle holds it, and can once it is closed', async () => {
    const handle = await lockFile(file);
    expect(spawnSync('flock', ['--nonblock', '--exclusive', file, 'true']).status).toBe(1);
    await handle.close();
    execFileSync('flock', ['--nonblock', '--exclusive', file, 'true']);
  });

  it('a locker that waited while the holder replaced the file ends up holding the file now at the path, told of the replacement once', async () => {
    const first = await lockFile(file);
    const busy = signal();
    const seen = busy.next();
    const replaced: number[] = [];
    const second = lockFile(file, { onBusy: busy.count, onReplaced: (attempt) => replaced.push(attempt) });
    await seen;
    // The holder saves: a new file, locked before it is renamed over the path.
    const temp = tempPathFor(file);
    const fd = openSync(temp, 'wx');
    lockNowSync(fd);
    writeFileSync(fd, 'new');
    renameSync(temp, file);
    const seenAgain = busy.next();
    await first.close(); // the second gets the old file's lock, finds it replaced, waits on the new one
    await seenAgain;
    closeSync(fd);
    const handle = await second;
    expect(replaced).toEqual([0]);
    expect(busy.calls).toBe(2);
    expect(await handle.readFile('utf8')).toBe('new');
    await handle.close();
  });

  it('fails with ENOENT when there is no file to lock', async () => {
    await expect(lockFile(path.join(dir, 'missing'))).rejects.toMatchObject({ code: 'ENOENT' });
  });
});

describe('lockNowSync', () => {
  it('fails at once with a busy error on a file another open holds locked', async () => {
    const handle = await lockFile(file);
    const fd = openSync(file, 'r');
    try {
      let caught: unknown;
      try {
        lockNowSync(fd);
      } catch (err) {
        caught = err;
      }
      expect(isLockBusy(caught)).toBe(true);
    } finally {
      closeSync(fd);
      await handle.close();
    }
  });
});
