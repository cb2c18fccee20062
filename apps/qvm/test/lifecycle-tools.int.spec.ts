import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { execFileSync } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import { startLibvirtd, type Libvirtd } from '@qubes-bus/testing';
import { buildBundles, errorLine, startStack, tool, toolsOf, type Stack } from './harness';

/**
 * qvm-start, qvm-shutdown, qvm-kill, qvm-pause, qvm-unpause, qvm-check and qvm-ls --host as a
 * user runs them, against a real vm-registry process running real QEMU domains (TCG, 128 MiB,
 * no disk, no OS) under a real libvirtd. That libvirtd is shared by every test file: the VMs
 * carry this process's id in their names. The tests build on each other, in order.
 */
let libvirtd: Libvirtd;
let stack: Stack;

const P = `t${process.pid}`;
const APP = `${P}-app`;
const OTHER = `${P}-other`;
const NET = `${P}-net`;
const CLIENT = `${P}-client`;
const ALL = [CLIENT, APP, OTHER, NET];

const { qvm, ok } = toolsOf(() => stack);

function virsh(...args: string[]): string {
  return execFileSync('virsh', ['-c', libvirtd.uri, ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}
const libvirtRunning = (): string[] => virsh('list', '--name').split('\n').filter(Boolean);

/** The STATE column of qvm-ls for these VMs: `name|state` lines. */
const states = (...vms: string[]): Promise<string> => ok('qvm-ls', '--raw-data', '--fields', 'name,state', ...vms);

/** Polls qvm-ls until `vm` shows `state`; how long it took. */
async function untilState(vm: string, state: string, timeoutMs: number): Promise<number> {
  const started = Date.now();
  while ((await states(vm)) !== `${vm}|${state}\n`) {
    if (Date.now() - started > timeoutMs) throw new Error(`${vm} is not ${state} after ${timeoutMs} ms: ${await states(vm)}`);
    await sleep(50);
  }
  return Date.now() - started;
}

const createVm = (name: string, ...properties: string[]): Promise<string> =>
  ok('qvm-create', '--class', 'StandaloneVM', '-l', 'red', '--property', 'memory=128', '--property', 'vcpus=1', ...properties.flatMap((p) => ['--property', p]), name);

beforeAll(async () => {
  [libvirtd] = await Promise.all([startLibvirtd({ driver: 'qemu' }), buildBundles()]);
  stack = await startStack({ registryEnv: { LIBVIRT_URI: libvirtd.uri, QUBES_DOMAIN_TYPE: 'qemu' } });
  await ok('qubes-prefs', 'default_netvm', '');
  // No guest answers ACPI in a disk-less domain: every shutdown that waits ends in a kill.
  await ok('qubes-prefs', 'default_shutdown_timeout', '1');
  await createVm(APP);
  await createVm(OTHER);
  await createVm(NET, 'provides_network=True');
  await createVm(CLIENT, `netvm=${NET}`);
}, 120_000);

afterAll(async () => {
  if (stack !== undefined) {
    await qvm('qvm-kill', '--all');
    await qvm('qvm-remove', '-f', ...ALL);
    await stack.stop();
  }
  await libvirtd?.stop();
}, 60_000);

describe('qvm-start, qvm-check, qvm-pause and qvm-unpause', () => {
  it('qvm-start runs a VM: qvm-ls shows it Running and libvirt runs its domain', async () => {
    expect(await states(APP)).toBe(`${APP}|Halted\n`);
    expect(await ok('qvm-start', APP)).toBe('');
    expect(await states(APP, OTHER)).toBe(`${APP}|Running\n${OTHER}|Halted\n`);
    expect(libvirtRunning()).toContain(APP);
    expect(libvirtRunning()).not.toContain(OTHER);
  });

  it('qvm-start fails for a VM already running (status 1), unless --skip-if-running', async () => {
    const again = await qvm('qvm-start', APP);
    expect(again.code).toBe(1);
    expect(errorLine(again)).toBe(`ERROR: domain ${APP} is already running`);
    expect(await ok('qvm-start', '--skip-if-running', APP)).toBe('');
  });

  it('qvm-check --running: 0 when every VM named runs, 3 when some do, 1 when none does', async () => {
    expect(await qvm('qvm-check', '--running', APP)).toEqual({ code: 0, stdout: `${APP} is running\n`, stderr: '' });
    expect(await qvm('qvm-check', '--running', APP, OTHER)).toEqual({ code: 3, stdout: `${APP} is running\n${OTHER} is not running\n`, stderr: '' });
    expect(await qvm('qvm-check', '--running', '-q', OTHER)).toEqual({ code: 1, stdout: '', stderr: '' });
    expect(await qvm('qvm-check', APP, OTHER)).toEqual({ code: 0, stdout: `${APP}, ${OTHER} exist\n`, stderr: '' });
    const missing = await qvm('qvm-check', `${P}-nope`);
    expect(missing.code).toBe(1);
    expect(errorLine(missing)).toBe(`ERROR: no such domain: ${P}-nope`);
  });

  it('qvm-pause and qvm-unpause: the VM shows Paused, then Running, in qvm-ls and in libvirt', async () => {
    expect(await ok('qvm-pause', APP)).toBe('');
    expect(await states(APP)).toBe(`${APP}|Paused\n`);
    expect(virsh('domstate', APP).trim()).toBe('paused');
    expect((await qvm('qvm-check', '--paused', APP)).code).toBe(0);
    expect(await ok('qvm-unpause', APP)).toBe('');
    expect(await states(APP)).toBe(`${APP}|Running\n`);
    expect(virsh('domstate', APP).trim()).toBe('running');
    const notPaused = await qvm('qvm-unpause', APP);
    expect(notPaused.code).toBe(1);
    expect(errorLine(notPaused)).toBe(`ERROR: ${APP} is not paused`);
  });

  it('qvm-ls --host prints the host: CPUs, load, memory in MiB, and the VMs running (dom0 and ours)', async () => {
    const host = await ok('qvm-ls', '--host');
    expect(host).toMatch(/^HOST +CPUS +CPU% +MEMORY +FREE +RUNNING\n\S+ +[1-9]\d* +(-|\d+\.\d) +[1-9]\d* +\d+ +2\n$/);
    const [memory, free] = host.split('\n')[1]!.trim().split(/ +/).slice(3, 5).map(Number);
    expect(free).toBeLessThan(memory!);
  });
});

describe('a VM stopped outside qubes-bus, qvm-kill and qvm-shutdown', () => {
  it('shows a VM destroyed with virsh as Halted within 2 s; qvm-kill then leaves it alone without error', async () => {
    virsh('destroy', APP);
    await untilState(APP, 'Halted', 2_000);
    expect(await ok('qvm-kill', APP)).toBe('');
    expect((await qvm('qvm-check', '--running', APP)).code).toBe(1);
  });

  it('qvm-shutdown --wait --timeout 1 kills a VM that does not shut down by itself, and ends with it Halted, status 0', async () => {
    await ok('qvm-start', APP);
    const started = Date.now();
    expect(await ok('qvm-shutdown', '--wait', '--timeout', '1', APP)).toBe('');
    expect(Date.now() - started).toBeGreaterThanOrEqual(1_000);
    expect(await states(APP)).toBe(`${APP}|Halted\n`);
    expect(libvirtRunning()).not.toContain(APP);
  });

  it('qvm-kill stops a running VM at once', async () => {
    await ok('qvm-start', OTHER);
    expect(await ok('qvm-kill', OTHER)).toBe('');
    expect(await states(OTHER)).toBe(`${OTHER}|Halted\n`);
    expect(libvirtRunning()).not.toContain(OTHER);
  });

  it('qvm-shutdown refuses a netvm whose client runs (no --wait: status 1); with --wait it goes in a second round, after its client', async () => {
    // Starting the client starts its netvm first.
    await ok('qvm-start', CLIENT);
    expect(await states(CLIENT, NET)).toBe(`${CLIENT}|Running\n${NET}|Running\n`);
    const refused = await qvm('qvm-shutdown', NET);
    expect(refused).toEqual({
      code: 1,
      stdout: '',
      stderr: `ERROR: there are other VMs connected to ${NET}: ${CLIENT}; shut them down first, or force\nERROR: Failed to shut down: ${NET}\n`,
    });
    expect(await states(NET)).toBe(`${NET}|Running\n`);
    expect(await ok('qvm-shutdown', '--wait', NET, CLIENT)).toBe('');
    expect(await states(CLIENT, NET)).toBe(`${CLIENT}|Halted\n${NET}|Halted\n`);
  });

  it('qvm-shutdown --all --wait halts a netvm and its client together (--all forces), and leaves dom0 running', async () => {
    await ok('qvm-start', CLIENT);
    expect(await states(CLIENT, NET)).toBe(`${CLIENT}|Running\n${NET}|Running\n`);
    expect(await ok('qvm-shutdown', '--all', '--wait')).toBe('');
    expect(await states(CLIENT, NET, 'dom0')).toBe(`dom0|Running\n${CLIENT}|Halted\n${NET}|Halted\n`);
    expect(libvirtRunning().filter((name) => name.startsWith(`${P}-`))).toEqual([]);
    expect((await qvm('qvm-check', '--running', '--all')).code).toBe(1);
  });
});

describe('a registry without a hypervisor', () => {
  let offline: Stack;

  beforeAll(async () => {
    offline = await startStack({ registryEnv: { LIBVIRT_URI: '' } });
    expect((await tool('qvm-create', ['--class', 'StandaloneVM', '-l', 'red', 'lonely'], offline.env)).code).toBe(0);
  }, 60_000);

  afterAll(async () => {
    await offline?.stop();
  });

  it('makes qvm-ls --host and qvm-start fail with its reason, one ERROR line, status 1', async () => {
    for (const [name, args] of [['qvm-ls', ['--host']], ['qvm-start', ['lonely']]] as const) {
      const result = await tool(name, args, offline.env);
      expect(result.code).toBe(1);
      expect(errorLine(result)).toBe('ERROR: no hypervisor: LIBVIRT_URI is not set');
    }
  });
});
