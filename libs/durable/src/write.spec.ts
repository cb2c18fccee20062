import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from '@jest/globals';
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createFileDurably, mkdirDurably, removeDurably, removeStaleTemps, renameDurably, replaceFileDurably, tempPathFor, writeFileDurably } from './write';

let dir: string;

beforeEach(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'qubes-bus-durable-'));
});

afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

/** A tmpfs of 64 KiB (root only): small enough to fill, and it can be made read-only. */
describe('on a small filesystem', () => {
  let mnt: string;

  beforeAll(() => {
    mnt = mkdtempSync(path.join(tmpdir(), 'qubes-bus-durable-tmpfs-'));
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=64k', 'tmpfs', mnt]);
  });

  afterAll(() => {
    execFileSync('umount', [mnt]);
    rmSync(mnt, { recursive: true, force: true });
  });

  afterEach(() => {
    execFileSync('mount', ['-o', 'remount,rw', mnt]);
    for (const name of readdirSync(mnt)) rmSync(path.join(mnt, name), { recursive: true, force: true });
  });

  it('a write that fills the disk fails with ENOSPC, leaving the old file intact and no temporary file', async () => {
    const file = path.join(mnt, 'firewall.xml');
    writeFileSync(file, 'old');
    const err = await writeFileDurably(file, Buffer.alloc(256 * 1024, 1)).catch((e: unknown) => e);
    expect((err as NodeJS.ErrnoException).code).toBe('ENOSPC');
    expect(readFileSync(file, 'utf8')).toBe('old');
    expect(readdirSync(mnt)).toEqual(['firewall.xml']);
  });

  it('a directory made read-only before the rename fails with EROFS and keeps the old file; the temporary file it leaves is what removeStaleTemps clears', async () => {
    const file = path.join(mnt, 'firewall.xml');
    writeFileSync(file, 'old');
    const err = await replaceFileDurably(file, async (temp) => {
      await writeFile(temp, 'new');
      execFileSync('mount', ['-o', 'remount,ro', mnt]); // as a crash would, the write stops here
    }).catch((e: unknown) => e);
    expect((err as NodeJS.ErrnoException).code).toBe('EROFS');
    expect(readFileSync(file, 'utf8')).toBe('old');
    execFileSync('mount', ['-o', 'remount,rw', mnt]);
    expect(readdirSync(mnt)).toHaveLength(2);
    await removeStaleTemps(file);
    expect(readdirSync(mnt)).toEqual(['firewall.xml']);
  });
});

describe('writeFileDurably', () => {
  it('replaces a file with the new data, made with the mode asked for, and leaves no temporary file beside it', async () => {
    const file = path.join(dir, 'qubes.xml');
    writeFileSync(file, 'old');
    await writeFileDurably(file, 'new', { mode: 0o640 });
    expect(readFileSync(file, 'utf8')).toBe('new');
    expect(statSync(file).mode & 0o777).toBe(0o640 & ~process.umask());
    expect(readdirSync(dir)).toEqual(['qubes.xml']);
  });

  it('creates a file that was not there', async () => {
    const file = path.join(dir, 'new.xml');
    await writeFileDurably(file, Buffer.from('data'));
    expect(readFileSync(file, 'utf8')).toBe('data');
  });

  it('replaces atomically: a reader in another process finds the old file or the new one at every read, never no file or a part of one', async () => {
    const file = path.join(dir, 'store.xml');
    const stop = path.join(dir, 'stop');
    const size = 64 * 1024;
    writeFileSync(file, 'A'.repeat(size));
    const reader = spawn(
      process.execPath,
      [
        '-e',
        `const fs = require('fs'); let reads = 0, bad = 0; process.stdout.write('ready\\n');
         while (!fs.existsSync(process.argv[2])) {
           let text = ''; try { text = fs.readFileSync(process.argv[1], 'utf8'); } catch { bad++; continue; }
           reads++; if (text.length !== ${size} || !(/^(A+|B+)$/.test(text))) bad++;
         }
         process.stdout.write(JSON.stringify({ reads, bad }));`,
        file,
        stop,
      ],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    let out = '';
    reader.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
    await new Promise<void>((resolve) => reader.stdout.once('data', () => resolve()));
    for (let i = 0; i < 40; i++) await writeFileDurably(file, (i % 2 === 0 ? 'B' : 'A').repeat(size));
    writeFileSync(stop, '');
    await new Promise((resolve) => reader.once('close', resolve));
    const { reads, bad } = JSON.parse(out.slice('ready\n'.length)) as { reads: number; bad: number };
    expect(reads).toBeGreaterThan(0);
    expect(bad).toBe(0);
  });
});

describe('replaceFileDurably', () => {
  it('removes the temporary file and keeps the old one when the fill fails after writing, throwing the fill’s own error', async () => {
    const file = path.join(dir, 'image.img');
    writeFileSync(file, 'old');
    const failure = new Error('the source went away');
    let tempSeen = '';
    const err = await replaceFileDurably(file, async (temp) => {
      writeFileSync(temp, 'half of it');
      tempSeen = temp;
      throw failure;
    }).catch((e: unknown) => e);
    expect(err).toBe(failure);
    expect(existsSync(tempSeen)).toBe(false);
    expect(readFileSync(file, 'utf8')).toBe('old');
    expect(readdirSync(dir)).toEqual(['image.img']);
  });

  it('hands the fill a hidden path beside the target and answers what the fill answers', async () => {
    const file = path.join(dir, 'image.img');
    const answer = await replaceFileDurably(file, async (temp) => {
      expect(path.dirname(temp)).toBe(dir);
      expect(path.basename(temp)).toMatch(/^\.image\.img\.[0-9a-f]{12}\.tmp$/);
      writeFileSync(temp, 'data');
      return 42;
    });
    expect(answer).toBe(42);
    expect(readFileSync(file, 'utf8')).toBe('data');
  });
});

describe('createFileDurably', () => {
  it('creates a missing file with the data and answers true, leaving no temporary file', async () => {
    const file = path.join(dir, 'qubes.xml');
    expect(await createFileDurably(file, 'first', { mode: 0o660 })).toBe(true);
    expect(readFileSync(file, 'utf8')).toBe('first');
    expect(readdirSync(dir)).toEqual(['qubes.xml']);
  });

  it('leaves a file already there as it is and answers false, leaving no temporary file', async () => {
    const file = path.join(dir, 'qubes.xml');
    writeFileSync(file, 'theirs');
    expect(await createFileDurably(file, 'ours')).toBe(false);
    expect(readFileSync(file, 'utf8')).toBe('theirs');
    expect(readdirSync(dir)).toEqual(['qubes.xml']);
  });
});

describe('renameDurably', () => {
  it('moves a file over another in a second directory, which then holds the moved file only', async () => {
    mkdirSync(path.join(dir, 'a'));
    mkdirSync(path.join(dir, 'b'));
    writeFileSync(path.join(dir, 'a/private.img'), 'moved');
    writeFileSync(path.join(dir, 'b/private.img'), 'replaced');
    await renameDurably(path.join(dir, 'a/private.img'), path.join(dir, 'b/private.img'));
    expect(readdirSync(path.join(dir, 'a'))).toEqual([]);
    expect(readFileSync(path.join(dir, 'b/private.img'), 'utf8')).toBe('moved');
  });

  it('fails with ENOENT, changing nothing, when the file to move is not there', async () => {
    writeFileSync(path.join(dir, 'kept'), 'kept');
    const err = await renameDurably(path.join(dir, 'missing'), path.join(dir, 'kept')).catch((e: unknown) => e);
    expect((err as NodeJS.ErrnoException).code).toBe('ENOENT');
    expect(readFileSync(path.join(dir, 'kept'), 'utf8')).toBe('kept');
  });
});

describe('removeDurably', () => {
  it('removes a file and answers true, or answers false when there was none', async () => {
    writeFileSync(path.join(dir, 'root-cow.img'), '');
    expect(await removeDurably(path.join(dir, 'root-cow.img'))).toBe(true);
    expect(existsSync(path.join(dir, 'root-cow.img'))).toBe(false);
    expect(await removeDurably(path.join(dir, 'root-cow.img'))).toBe(false);
  });
});

describe('mkdirDurably', () => {
  it('makes every missing directory of a path, with the mode asked for, and accepts one already there', async () => {
    const deep = path.join(dir, 'appvms/work/sub');
    await mkdirDurably(deep, { mode: 0o750 });
    expect(statSync(deep).isDirectory()).toBe(true);
    expect(statSync(path.join(dir, 'appvms')).mode & 0o777).toBe(0o750 & ~process.umask());
    await mkdirDurably(deep);
  });
});

describe('removeStaleTemps', () => {
  it('removes the temporary files of its target only, leaving other files and other targets’ temporary files', async () => {
    const file = path.join(dir, 'qubes.xml');
    const other = path.join(dir, 'firewall.xml');
    for (const name of [file, other]) writeFileSync(name, 'kept');
    const [stale, othersTemp] = [tempPathFor(file), tempPathFor(other)];
    writeFileSync(stale, 'stale');
    writeFileSync(othersTemp, 'not ours');
    writeFileSync(path.join(dir, '.qubes.xml.notatemp.tmp'), 'kept');
    await removeStaleTemps(file);
    expect(readdirSync(dir).sort()).toEqual(['.qubes.xml.notatemp.tmp', path.basename(othersTemp), 'firewall.xml', 'qubes.xml'].sort());
  });
});
