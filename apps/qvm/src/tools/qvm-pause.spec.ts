import { describe, expect, it } from '@jest/globals';
import { fakeContext, registryError, runSeen, vmSummary, type Call } from '../testing/fake-context';
import { qvmPause, qvmUnpause } from './qvm-pause';

const domains = [vmSummary('work', { state: 'Running' }), vmSummary('vault', { state: 'Paused' }), vmSummary('old')];

function registry(call: Call): unknown {
  const state = domains.find((vm) => vm.name === call.dest)?.state;
  switch (call.method) {
    case 'admin.vm.List':
      return { domains };
    case 'admin.vm.Pause':
      if (state === 'Halted') throw registryError('VM_NOT_RUNNING', `${call.dest} is not running`, call.dest);
      return null;
    case 'admin.vm.Unpause':
      if (state !== 'Paused') throw registryError('VM_NOT_PAUSED', `${call.dest} is not paused`, call.dest);
      return null;
    default:
      throw new Error(`unexpected ${call.method}`);
  }
}

describe('qvm-pause and qvm-unpause', () => {
  it('pause the qubes named with admin.vm.Pause, printing nothing', async () => {
    const ctx = fakeContext(registry);
    expect(await runSeen(qvmPause, ctx, ['work', 'vault'])).toEqual({ status: 0, stdout: '', stderr: '' });
    expect(ctx.calls.map((c) => `${c.method} ${c.dest}`)).toEqual(['admin.vm.List dom0', 'admin.vm.Pause work', 'admin.vm.Pause vault']);
  });

  it("print the registry's refusal of a qube that is not running (pause) or not paused (unpause), status 1", async () => {
    expect(await runSeen(qvmPause, fakeContext(registry), ['old', 'work'])).toEqual({ status: 1, stdout: '', stderr: 'ERROR: old is not running\n' });
    const ctx = fakeContext(registry);
    expect(await runSeen(qvmUnpause, ctx, ['vault', 'work'])).toEqual({ status: 1, stdout: '', stderr: 'ERROR: work is not paused\n' });
    expect(ctx.calls.map((c) => `${c.method} ${c.dest}`)).toEqual(['admin.vm.List dom0', 'admin.vm.Unpause vault', 'admin.vm.Unpause work']);
  });

  it('refuse a name that is no qube before pausing any', async () => {
    const ctx = fakeContext(registry);
    expect(await runSeen(qvmPause, ctx, ['work', 'nope'])).toEqual({ status: 1, stdout: '', stderr: 'ERROR: no such domain: nope\n' });
    expect(ctx.calls.map((c) => c.method)).toEqual(['admin.vm.List']);
  });
});
