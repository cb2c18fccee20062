import { afterAll, describe, expect, it } from '@jest/globals';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import path from 'node:path';
import { tmpDataDir } from '@qubes-bus/testing';

const ROOT = path.resolve(__dirname, '../..');
const varDir = tmpDataDir('qubes-bus-stack-');
// mkdtemp makes it 0700; QEMU, running as libvirt-qemu, must pass through to the VMs' images,
// as it passes through a checkout's var/ (README: "Running VMs").
chmodSync(varDir.path, 0o711);
let stack: ChildProcess | undefined;

/** A port nothing listens on: bound, read, released. */
function closedPort(): Promise<number> {
  return new Promise((resolve) => {
    const server = createServer().listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

function qvmLs(env: NodeJS.ProcessEnv): { status: number | null; stdout: string; stderr: string; ms: number } {
  const started = Date.now();
  const run = spawnSync('npx', ['qvm-ls'], { cwd: ROOT, env: { ...process.env, ...env }, encoding: 'utf8', timeout: 20_000 });
  return { status: run.status, stdout: run.stdout, stderr: run.stderr, ms: Date.now() - started };
}

/** Runs a tool through npx, as the README shows; its status and what it printed on stderr. */
function npx(args: string[], env: NodeJS.ProcessEnv): { status: number | null; stderr: string } {
  const run = spawnSync('npx', args, { cwd: ROOT, env, encoding: 'utf8', timeout: 60_000 });
  return { status: run.status, stderr: run.stderr };
}

/** Runs `npm start` in its own process group and waits for its "running" line. */
async function startStack(env: NodeJS.ProcessEnv): Promise<Array<Record<string, unknown>>> {
  stack = spawn('npm', ['start'], { cwd: ROOT, env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  const lines: Array<Record<string, unknown>> = [];
  let stderr = '';
  stack.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  await new Promise<void>((resolve, reject) => {
    let buffer = '';
    stack!.stdout!.on('data', (chunk: Buffer) => {
      buffer += chunk.toString();
      for (let nl = buffer.indexOf('\n'); nl >= 0; nl = buffer.indexOf('\n')) {
        const line = buffer.slice(0, nl);
        buffer = buffer.slice(nl + 1);
        if (!line.startsWith('{')) continue;
        const parsed = JSON.parse(line) as Record<string, unknown>;
        lines.push(parsed);
        if (String(parsed['msg']).startsWith('qubes-bus is running')) resolve();
      }
    });
    stack!.once('exit', (code) => reject(new Error(`npm start exited (${code}): ${stderr}`)));
  });
  return lines;
}

afterAll(async () => {
  // Whatever a failed test left: npm's group, and the stack's detached nats-server and services.
  const pids = [-(stack?.pid ?? 0)];
  try {
    pids.push(...readFileSync(path.join(varDir.path, 'stack.procs'), 'utf8').split('\n').filter(Boolean).map((l) => Number(l.split(' ')[0])));
  } catch {
    // the stack stopped cleanly
  }
  for (const pid of pids.filter((p) => p !== 0)) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // gone already
    }
  }
  varDir.remove();
});

describe('the embedded stack and qvm-ls, end to end', () => {
  it('with nothing running, qvm-ls prints one ERROR line saying the bus is unreachable and how to start it, fast', async () => {
    const stale = tmpDataDir('qubes-bus-stale-');
    writeFileSync(path.join(stale.path, 'nats.url'), `nats://127.0.0.1:${await closedPort()}\n`);
    const run = qvmLs({ QUBES_VAR_DIR: stale.path, QUBES_NATS_URL: '' });
    stale.remove();
    expect(run.status).not.toBe(0);
    expect(run.stdout).toBe('');
    expect(run.stderr.split('\n').filter(Boolean)).toHaveLength(1);
    expect(run.stderr).toMatch(/^ERROR: the qubes bus is unreachable at nats:\/\/127\.0\.0\.1:\d+ .*start it with 'npm start'/);
    // npx itself takes most of this; the tool alone is measured in bench/bus.bench.ts
    expect(run.ms).toBeLessThan(3_000);

    const fromEnv = qvmLs({ QUBES_NATS_URL: `nats://127.0.0.1:${await closedPort()}` });
    expect(fromEnv.status).not.toBe(0);
    expect(fromEnv.stderr).toMatch(/^ERROR: the qubes bus is unreachable at .*\(from QUBES_NATS_URL/);
  });

  it('npm start brings up the stack; npx qvm-ls lists dom0; the README\'s VM starts and stops on its libvirtd; a second start refuses; a stack killed outright is cleaned up by the next start; Ctrl-C stops it all', async () => {
    mkdirSync(varDir.path, { recursive: true });
    const env: NodeJS.ProcessEnv = { ...process.env, QUBES_VAR_DIR: varDir.path, LOG_FORMAT: 'json' };
    delete env['QUBES_NATS_URL'];
    let lines = await startStack(env);
    expect(new Set(lines.map((l) => l['service']))).toEqual(new Set(['stack', 'vm-registry', 'storage']));
    expect(existsSync(path.join(varDir.path, 'lib/qubes/qubes.xml'))).toBe(true);

    const listed = qvmLs({ QUBES_VAR_DIR: varDir.path, QUBES_NATS_URL: '' });
    expect(listed.stderr).toBe('');
    expect(listed.status).toBe(0);
    expect(listed.stdout.split('\n')).toEqual([
      'NAME  STATE    CLASS    LABEL  TEMPLATE  NETVM',
      'dom0  Running  AdminVM  black  -         -',
      '',
    ]);

    // The README's walk-through: a VM that really runs, on the stack's own libvirtd.
    const vm = `e2e${process.pid}`;
    const tools = { ...process.env, QUBES_VAR_DIR: varDir.path, QUBES_NATS_URL: '' };
    for (const args of [
      ['qubes-prefs', 'default_netvm', ''],
      ['qvm-create', '--class', 'StandaloneVM', '--label', 'red', '--property', 'memory=128', vm],
      ['qvm-start', vm],
    ]) {
      expect(npx(args, tools)).toEqual({ status: 0, stderr: '' });
    }
    expect(spawnSync('npx', ['qvm-ls', '--running', '--raw-list'], { cwd: ROOT, env: tools, encoding: 'utf8' }).stdout.split('\n')).toContain(vm);
    // its disks are the storage service's images, the running ones
    const vmDir = path.join(varDir.path, 'lib/qubes/appvms', vm);
    const libvirtUri = String(lines.find((l) => l['msg'] === 'private libvirtd started')?.['uri']);
    const dumped = spawnSync('virsh', ['-c', libvirtUri, 'dumpxml', vm], { encoding: 'utf8' }).stdout;
    for (const volume of ['root', 'private', 'volatile']) expect(dumped).toContain(`<source file='${vmDir}/${volume}-dirty.img'`);
    // grown while it runs, the domain sees the new size at once (libvirt blockresize)
    const capacity = (): string => /Capacity:\s+(\d+)/.exec(spawnSync('virsh', ['-c', libvirtUri, 'domblkinfo', vm, 'vdb'], { encoding: 'utf8' }).stdout)?.[1] ?? '';
    expect(capacity()).toBe(String(2 * 1024 ** 3));
    expect(npx(['qvm-volume', 'resize', `${vm}:private`, '3GiB'], tools)).toEqual({ status: 0, stderr: '' });
    expect(capacity()).toBe(String(3 * 1024 ** 3));
    expect(npx(['qvm-shutdown', '--wait', '--timeout', '1', vm], tools)).toEqual({ status: 0, stderr: '' });
    expect(existsSync(path.join(vmDir, 'private-dirty.img'))).toBe(false); // committed at the stop
    expect(existsSync(path.join(vmDir, 'private.img'))).toBe(true);
    expect(npx(['qvm-remove', '--force', vm], tools)).toEqual({ status: 0, stderr: '' });
    expect(existsSync(vmDir)).toBe(false);

    const second = spawnSync('npm', ['start'], { cwd: ROOT, env, encoding: 'utf8', timeout: 60_000 });
    expect(second.status).not.toBe(0);
    expect(second.stderr).toMatch(/ERROR: the qubes-bus stack is already running here \(pid \d+\)/);

    // Killed outright, the stack leaves its nats-server and services behind; the next start
    // stops them and comes up on the same store.
    process.kill(Number(readFileSync(path.join(varDir.path, 'stack.pid'), 'utf8')), 'SIGKILL');
    lines = await startStack(env);
    expect(lines.filter((l) => l['msg'] === 'stopping a process left over by a stack that died')).toHaveLength(3); // nats-server and two services
    expect(qvmLs({ QUBES_VAR_DIR: varDir.path, QUBES_NATS_URL: '' }).stdout).toContain('dom0  Running  AdminVM');

    const exited = new Promise<string>((resolve) => stack!.once('exit', (code, signal) => resolve(signal ?? String(code))));
    process.kill(-stack!.pid!, 'SIGINT'); // what Ctrl-C on its terminal sends to the whole group
    // npm itself dies of the SIGINT, as on a terminal; the stack then stops in order.
    expect(['0', 'SIGINT']).toContain(await exited);
    const deadline = Date.now() + 15_000;
    while (existsSync(path.join(varDir.path, 'stack.pid')) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    expect(existsSync(path.join(varDir.path, 'nats.url'))).toBe(false);
    expect(existsSync(path.join(varDir.path, 'stack.pid'))).toBe(false);
    expect(lines.map((l) => l['msg'])).toEqual(expect.arrayContaining(['stopping', 'stopped']));
  }, 180_000);
});
