import { describe, expect, it } from '@jest/globals';
import type { VmSummary } from '@qubes-bus/contracts';
import { fakeContext, registryError, runSeen, vmSummary, type Call } from '../testing/fake-context';
import { qvmStart } from './qvm-start';

const domains: VmSummary[] = [
  vmSummary('dom0', { class: 'AdminVM', state: 'Running' }),
  vmSummary('work'),
  vmSummary('vault'),
  vmSummary('sys-net', { state: 'Running' }),
  vmSummary('mail', { state: 'Paused' }),
];

function registry(refuse: Record<string, Error> = {}): (call: Call) => unknown {
  return (call) => {
    if (call.method === 'admin.vm.List') return { domains };
    if (call.method === 'admin.vm.Start') {
      const refusal = refuse[call.dest];
      if (refusal !== undefined) throw refusal;
      return null;
    }
    throw new Error(`unexpected ${call.method}`);
  };
}

const starts = (calls: readonly Call[]): string[] => calls.filter((c) => c.method === 'admin.vm.Start').map((c) => c.dest);

describe('qvm-start', () => {
  it('starts the qubes named, one after the other in the order given, and prints nothing', async () => {
    const ctx = fakeContext(registry());
    expect(await runSeen(qvmStart, ctx, ['vault', 'work'])).toEqual({ status: 0, stdout: '', stderr: '' });
    expect(starts(ctx.calls)).toEqual(['vault', 'work']);
  });

  it('fails for a qube already running (a paused one runs too) with status 1, and still starts the others', async () => {
    const ctx = fakeContext(registry());
    expect(await runSeen(qvmStart, ctx, ['sys-net', 'work', 'mail'])).toEqual({
      status: 1,
      stdout: '',
      stderr: 'ERROR: domain sys-net is already running\nERROR: domain mail is already running\n',
    });
    expect(starts(ctx.calls)).toEqual(['work']);
  });

  it("skips the running qubes with --skip-if-running (and takes Qubes' -q)", async () => {
    const ctx = fakeContext(registry());
    expect(await runSeen(qvmStart, ctx, ['--skip-if-running', '-q', 'sys-net', 'work'])).toEqual({ status: 0, stdout: '', stderr: '' });
    expect(starts(ctx.calls)).toEqual(['work']);
  });

  it("prints the registry's refusal of one qube, naming it, and goes on with the next", async () => {
    const ctx = fakeContext(registry({ work: registryError('VM_START_FAILED', 'work cannot start: the storage service refused: full', 'work'), vault: registryError('INTERNAL', 'internal error') }));
    expect(await runSeen(qvmStart, ctx, ['work', 'vault'])).toEqual({
      status: 1,
      stdout: '',
      stderr: 'ERROR: work cannot start: the storage service refused: full\nERROR: vault: internal error\n',
    });
  });

  it('stops at a registry without a hypervisor, saying so once', async () => {
    const ctx = fakeContext(registry({ work: registryError('VMM_OFFLINE', 'no hypervisor: LIBVIRT_URI is not set') }));
    expect(await runSeen(qvmStart, ctx, ['work', 'vault'])).toEqual({ status: 1, stdout: '', stderr: 'ERROR: no hypervisor: LIBVIRT_URI is not set\n' });
    expect(starts(ctx.calls)).toEqual(['work']);
  });

  it('checks every name before starting any', async () => {
    const ctx = fakeContext(registry());
    expect(await runSeen(qvmStart, ctx, ['work', 'nope'])).toEqual({ status: 1, stdout: '', stderr: 'ERROR: no such domain: nope\n' });
    expect(starts(ctx.calls)).toEqual([]);
  });

  it('starts every qube but dom0 with --all, less those excluded, and refuses names with --all as a usage error', async () => {
    const ctx = fakeContext(registry());
    expect(await runSeen(qvmStart, ctx, ['--all', '--skip-if-running', '--exclude', 'vault'])).toEqual({ status: 0, stdout: '', stderr: '' });
    expect(starts(ctx.calls)).toEqual(['work']);
    expect(await runSeen(qvmStart, fakeContext(registry()), ['--all', 'work'])).toMatchObject({ status: 2, stderr: 'ERROR: give either --all or qube names, not both\n' });
    expect(await runSeen(qvmStart, fakeContext(registry()), [])).toMatchObject({ status: 2, stderr: 'ERROR: give one or more qube names, or --all\n' });
    expect(await runSeen(qvmStart, fakeContext(registry()), ['--exclude', 'vault', 'work'])).toMatchObject({ status: 2, stderr: 'ERROR: --exclude can only be used with --all\n' });
  });
});
