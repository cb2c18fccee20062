import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { buildBundles, errorLine, startStack, toolsOf, type Stack } from './harness';

/**
 * qvm-volume, qvm-pool and qvm-clone as a user runs them, against a real vm-registry and a real
 * storage service (their bundles) on a real nats-server; the data dir's own filesystem.
 */
let stack: Stack;
const { qvm, ok } = toolsOf(() => stack);
const MiB = 1024 * 1024;

beforeAll(async () => {
  await buildBundles();
  stack = await startStack({ storage: true });
  await ok('qvm-create', '--class', 'TemplateVM', '--label', 'black', 'tpl');
  await ok('qvm-create', '--template', 'tpl', '--label', 'red', 'work');
}, 120_000);

afterAll(async () => {
  await stack?.stop();
});

const image = (vid: string): string => path.join(stack.dir.path, `${vid}.img`);

describe('qvm-volume', () => {
  it('lists and shows the volumes of qubes, as Qubes prints them', async () => {
    expect((await ok('qvm-volume', 'list', 'work')).split('\n')).toEqual([
      'POOL:VOLUME                       VMNAME  VOLUME_NAME  REVERT_POSSIBLE',
      'varlibqubes:appvms/work/root      work    root         No',
      'varlibqubes:appvms/work/private   work    private      No',
      'varlibqubes:appvms/work/volatile  work    volatile     No',
      '',
    ]);
    expect(await ok('qvm-volume', 'info', 'work:private', 'size')).toBe(`${2 * 1024 * MiB}\n`);
    expect(await ok('qvm-volume', 'info', 'work:root', 'source')).toBe('vm-templates/tpl/root\n');
    const info = await ok('qvm-volume', 'info', 'work:private');
    expect(info).toMatch(/^pool\s+varlibqubes$/m);
    expect(info).toMatch(/^save_on_stop\s+True$/m);
  });

  it('imports a file, grows the volume, sets its revisions, and refuses to shrink it', async () => {
    const file = path.join(stack.dir.path, 'data.img');
    const data = randomBytes(5 * MiB);
    writeFileSync(file, data);
    expect(await ok('qvm-volume', 'import', 'work:private', file)).toBe('');
    expect(readFileSync(image('appvms/work/private')).equals(data)).toBe(true);
    expect(await ok('qvm-volume', 'info', 'work:private', 'size')).toBe(`${5 * MiB}\n`);

    await ok('qvm-volume', 'resize', 'work:private', '64MiB');
    expect(await ok('qvm-volume', 'info', 'work:private', 'size')).toBe(`${64 * MiB}\n`);
    const shrink = await qvm('qvm-volume', 'resize', 'work:private', '1M');
    expect(shrink.code).toBe(1);
    expect(errorLine(shrink)).toMatch(/^ERROR: volume appvms\/work\/private only grows/);

    await ok('qvm-volume', 'config', 'work:private', 'revisions_to_keep', '3');
    expect(await ok('qvm-volume', 'info', 'work:private', 'revisions_to_keep')).toBe('3\n');
    const bad = await qvm('qvm-volume', 'config', 'work:private', 'size', '3');
    expect(bad.code).toBe(2);
    expect(errorLine(bad)).toMatch(/revisions_to_keep and rw/);
    const missing = await qvm('qvm-volume', 'info', 'work:swap');
    expect(errorLine(missing)).toBe('ERROR: work has no volume swap');
  });
});

describe('qvm-clone', () => {
  it('clones a qube: its properties, tags and the data of its volumes', async () => {
    await ok('qvm-prefs', 'work', 'memory', '600');
    await ok('qvm-tags', 'work', 'add', 'project-x');
    await ok('qvm-clone', 'work', 'work-copy');
    expect(await ok('qvm-prefs', 'work-copy', 'memory')).toBe('600\n');
    expect(await ok('qvm-prefs', 'work-copy', 'template')).toBe('tpl\n');
    expect(await ok('qvm-tags', 'work-copy', 'list')).toBe('project-x\n');
    expect(readFileSync(image('appvms/work-copy/private')).equals(readFileSync(image('appvms/work/private')))).toBe(true);
    expect(existsSync(image('appvms/work-copy/root'))).toBe(false); // the template's, at each start

    const taken = await qvm('qvm-clone', 'work', 'work-copy');
    expect(errorLine(taken)).toMatch(/^ERROR: .*work-copy.*exists/);
  });
});

describe('qvm-pool', () => {
  it('lists, adds, shows and removes pools', async () => {
    expect(await ok('qvm-pool', 'list')).toBe(['NAME          DRIVER', 'varlibqubes   file-reflink', 'linux-kernel  linux-kernel', ''].join('\n'));
    expect(await ok('qvm-pool', 'drivers')).toMatch(/^file-reflink\s+dir_path, revisions_to_keep, setup_check$/m);

    const dir = path.join(stack.dir.path, 'second');
    mkdirSync(dir);
    await ok('qvm-pool', 'add', 'second', 'file-reflink', '-o', `dir_path=${dir}`, '-o', 'setup_check=no');
    expect(await ok('qvm-pool', 'info', 'second')).toMatch(new RegExp(`^dir_path\\s+${dir}$`, 'm'));
    await ok('qvm-create', '--class', 'StandaloneVM', '--label', 'blue', '--pool', 'second', 'apart');
    expect(existsSync(path.join(dir, 'appvms/apart/private.img'))).toBe(true);
    const inUse = await qvm('qvm-pool', 'remove', 'second');
    expect(errorLine(inUse)).toBe('ERROR: pool second is in use by VM apart');
    await ok('qvm-remove', '--force', 'apart');
    await ok('qvm-pool', 'remove', 'second');
    expect(await ok('qvm-pool', 'list')).not.toContain('second');

    const nowhere = await qvm('qvm-pool', 'add', 'nowhere', 'file-reflink', '-o', `dir_path=${path.join(dir, 'missing')}`);
    expect(errorLine(nowhere)).toMatch(/^ERROR: pool nowhere: dir_path .* does not exist/);
  });
});
