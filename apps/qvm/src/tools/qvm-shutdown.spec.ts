import { describe, expect, it } from '@jest/globals';
import type { ReceivedEvent } from '@qubes-bus/bus';
import type { VmSummary } from '@qubes-bus/contracts';
import { fakeContext, liveSubscription, registryError, runSeen, vmSummary, type Call, type FakeContext } from '../testing/fake-context';
import { qvmShutdown } from './qvm-shutdown';

const stoppedEvent = (vm: string, seq: number): ReceivedEvent => ({
  seq,
  subject: `qubes.vm.${vm}.domain-stopped`,
  message: { vm, event: 'domain-stopped', ts: new Date().toISOString() },
});

interface Registry {
  ctx: FakeContext;
  /** The pattern subscribed to, and how many calls had been made by then. */
  subscribed: { pattern: string; afterCalls: number } | null;
  /** What the tool called, as `method dest[ arg]`, List calls left out. */
  asked(): string[];
}

/**
 * A registry that keeps the power states: a VM asked to shut down stops a moment later (its
 * `domain-stopped` event follows) unless it is one of `deaf` (no guest to answer); a netvm with
 * running clients refuses (VM_IN_USE) unless forced; a kill stops at once.
 */
function registry(vms: readonly VmSummary[], options: { deaf?: string[]; killFails?: string[] } = {}): Registry {
  const states = new Map(vms.map((vm) => [vm.name, vm.state]));
  const subscription = liveSubscription();
  let seq = 0;
  const stop = (vm: string): void => {
    states.set(vm, 'Halted');
    subscription.push(stoppedEvent(vm, ++seq));
  };
  const row = (vm: VmSummary): VmSummary => ({ ...vm, state: states.get(vm.name)! });
  const answer = (call: Call): unknown => {
    const vm = call.dest;
    const running = states.get(vm) !== 'Halted';
    switch (call.method) {
      case 'admin.vm.List':
        return { domains: vms.map(row) };
      case 'admin.vm.Shutdown': {
        if (vm === 'dom0') throw registryError('VM_CLASS_INVALID', 'dom0 is the admin VM: it always runs, and is not a domain to start or stop', vm);
        if (!running) throw registryError('VM_NOT_RUNNING', `${vm} is not running`, vm);
        const clients = vms.filter((c) => c.netvm === vm && states.get(c.name) !== 'Halted').map((c) => c.name);
        if (clients.length > 0 && (call.body as { arg?: string }).arg !== 'force') {
          throw registryError('VM_IN_USE', `there are other VMs connected to ${vm}: ${clients.join(', ')}; shut them down first, or force`, vm);
        }
        if (!options.deaf?.includes(vm)) setTimeout(() => stop(vm), 10);
        return null;
      }
      case 'admin.vm.Kill':
        if (!running) throw registryError('VM_NOT_RUNNING', `${vm} is not running`, vm);
        if (options.killFails?.includes(vm)) throw registryError('VMM_ERROR', 'libvirt: cannot kill', vm);
        stop(vm);
        return null;
      default:
        throw new Error(`unexpected ${call.method}`);
    }
  };
  const result: Registry = {
    subscribed: null,
    ctx: fakeContext(answer, { subscription, subscribed: (pattern) => (result.subscribed = { pattern, afterCalls: result.ctx.calls.length }) }),
    asked: () =>
      result.ctx.calls
        .filter((c) => c.method !== 'admin.vm.List')
        .map((c) => [c.method.replace('admin.vm.', ''), c.dest, (c.body as { arg?: string }).arg].filter(Boolean).join(' ')),
  };
  return result;
}

const timeout = (seconds: number) => ({ shutdown_timeout: { value: seconds, default: true, type: 'int' as const } });
const dom0 = vmSummary('dom0', { class: 'AdminVM', state: 'Running' });
const sysNet = vmSummary('sys-net', { state: 'Running', properties: timeout(60) });
const work = vmSummary('work', { state: 'Running', netvm: 'sys-net', properties: timeout(60) });

describe('qvm-shutdown', () => {
  it('asks the qubes to shut down and returns at once without --wait', async () => {
    const r = registry([dom0, sysNet, work]);
    expect(await runSeen(qvmShutdown, r.ctx, ['work'])).toEqual({ status: 0, stdout: '', stderr: '' });
    expect(r.asked()).toEqual(['Shutdown work']);
    expect(r.subscribed).toBeNull();
  });

  it('without --wait, prints a refusal and the qubes that failed, status 1; a qube not running is no failure', async () => {
    const halted = vmSummary('old');
    const r = registry([dom0, sysNet, work, halted]);
    expect(await runSeen(qvmShutdown, r.ctx, ['sys-net', 'old'])).toEqual({
      status: 1,
      stdout: '',
      stderr: 'ERROR: there are other VMs connected to sys-net: work; shut them down first, or force\nERROR: Failed to shut down: sys-net\n',
    });
    expect(r.asked()).toEqual(['Shutdown sys-net', 'Shutdown old']);
  });

  it('with --wait, asks a netvm refused in round 1 (VM_IN_USE) again in round 2, once its client has stopped', async () => {
    const r = registry([dom0, sysNet, work]);
    expect(await runSeen(qvmShutdown, r.ctx, ['--wait', 'sys-net', 'work'])).toEqual({ status: 0, stdout: '', stderr: '' });
    expect(r.asked()).toEqual(['Shutdown sys-net', 'Shutdown work', 'Shutdown sys-net']);
    // Subscribed to the events of both qubes after the list and before asking any.
    expect(r.subscribed).toEqual({ pattern: 'qubes.vm.*.>', afterCalls: 1 });
  });

  it('kills a qube still running after --timeout, and ends with status 0 once it is halted', async () => {
    const r = registry([dom0, work], { deaf: ['work'] });
    const started = Date.now();
    expect(await runSeen(qvmShutdown, r.ctx, ['--wait', '--timeout', '0.2', 'work'])).toEqual({ status: 0, stdout: '', stderr: '' });
    expect(Date.now() - started).toBeGreaterThanOrEqual(190);
    expect(r.asked()).toEqual(['Shutdown work', 'Kill work']);
    expect(r.subscribed?.pattern).toBe('qubes.vm.work.>');
  });

  it("waits, by default, as long as the largest shutdown_timeout of the round's qubes", async () => {
    const quick = vmSummary('quick', { state: 'Running', properties: timeout(0.05) });
    const slow = vmSummary('slow', { state: 'Running', properties: timeout(0.3) });
    const r = registry([quick, slow], { deaf: ['quick', 'slow'] });
    const started = Date.now();
    expect((await runSeen(qvmShutdown, r.ctx, ['--wait', 'quick', 'slow'])).status).toBe(0);
    expect(Date.now() - started).toBeGreaterThanOrEqual(290);
    expect(r.asked()).toEqual(['Shutdown quick', 'Shutdown slow', 'Kill quick', 'Kill slow']);
  });

  it('--all forces the shutdown of every qube that is not halted, dom0 and excluded qubes aside', async () => {
    const paused = vmSummary('mail', { state: 'Paused' });
    const r = registry([dom0, sysNet, work, vmSummary('old'), paused, vmSummary('keep', { state: 'Running' })]);
    expect(await runSeen(qvmShutdown, r.ctx, ['--all', '--exclude', 'keep', '--wait'])).toEqual({ status: 0, stdout: '', stderr: '' });
    expect(r.asked()).toEqual(['Shutdown sys-net force', 'Shutdown work force', 'Shutdown mail force']);
  });

  it('with --wait, ends with the last refusal of each qube still running and "Failed to shut down", status 1', async () => {
    // work is not asked: sys-net stays in use, and a round that asked no one ends the rounds.
    const r = registry([dom0, sysNet, work]);
    expect(await runSeen(qvmShutdown, r.ctx, ['--wait', 'sys-net', 'dom0'])).toEqual({
      status: 1,
      stdout: '',
      stderr: [
        'ERROR: there are other VMs connected to sys-net: work; shut them down first, or force',
        'ERROR: dom0 is the admin VM: it always runs, and is not a domain to start or stop',
        'ERROR: Failed to shut down: sys-net, dom0',
        '',
      ].join('\n'),
    });
    expect(r.asked()).toEqual(['Shutdown sys-net', 'Shutdown dom0']);
  });

  it('reports a kill that failed after the timeout', async () => {
    const r = registry([work], { deaf: ['work'], killFails: ['work'] });
    expect(await runSeen(qvmShutdown, r.ctx, ['--timeout', '0.01', 'work'])).toEqual({
      status: 1,
      stdout: '',
      stderr: "ERROR: Failed to kill 'work': libvirt: cannot kill\nERROR: Failed to shut down: work\n",
    });
  });

  it('refuses a timeout that is not a number of seconds, as a usage error', async () => {
    const r = registry([work]);
    expect(await runSeen(qvmShutdown, r.ctx, ['--wait', '--timeout', 'soon', 'work'])).toMatchObject({ status: 2, stderr: expect.stringMatching(/^ERROR: .*a timeout is a number of seconds/) });
    expect(r.ctx.calls).toEqual([]);
  });
});
