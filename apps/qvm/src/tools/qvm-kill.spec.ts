import { describe, expect, it } from '@jest/globals';
import { fakeContext, registryError, runSeen, vmSummary, type Call } from '../testing/fake-context';
import { qvmKill } from './qvm-kill';

const domains = [vmSummary('dom0', { class: 'AdminVM', state: 'Running' }), vmSummary('work', { state: 'Running' }), vmSummary('old'), vmSummary('stuck', { state: 'Running' })];

function registry(call: Call): unknown {
  if (call.method === 'admin.vm.List') return { domains };
  if (call.method !== 'admin.vm.Kill') throw new Error(`unexpected ${call.method}`);
  if (call.dest === 'old') throw registryError('VM_NOT_RUNNING', 'old is not running', 'old');
  if (call.dest === 'stuck') throw registryError('VMM_ERROR', 'libvirt: operation timed out', 'stuck');
  return null;
}

const kills = (calls: readonly Call[]): string[] => calls.filter((c) => c.method === 'admin.vm.Kill').map((c) => c.dest);

describe('qvm-kill', () => {
  it('kills the qubes named, and leaves a halted one alone without error (R4.1)', async () => {
    const ctx = fakeContext(registry);
    expect(await runSeen(qvmKill, ctx, ['work', 'old'])).toEqual({ status: 0, stdout: '', stderr: '' });
    expect(kills(ctx.calls)).toEqual(['work', 'old']);
  });

  it("prints each failure as Qubes words it, and kills the others", async () => {
    const ctx = fakeContext(registry);
    expect(await runSeen(qvmKill, ctx, ['stuck', 'work'])).toEqual({ status: 1, stdout: '', stderr: "ERROR: Failed to kill 'stuck': libvirt: operation timed out\n" });
    expect(kills(ctx.calls)).toEqual(['stuck', 'work']);
  });

  it('kills every qube but dom0 with --all', async () => {
    const ctx = fakeContext(registry);
    expect((await runSeen(qvmKill, ctx, ['--all', '--exclude', 'stuck'])).status).toBe(0);
    expect(kills(ctx.calls)).toEqual(['work', 'old']);
  });
});
