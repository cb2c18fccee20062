import { describe, expect, it } from '@jest/globals';
import { UsageError } from '../errors';
import { fakeContext, runTool, type Call } from '../testing/fake-context';
import { qubesPrefs, qvmPrefs } from './qvm-prefs';

function registry(call: Call): unknown {
  switch (call.method) {
    case 'admin.vm.property.Get':
      return { name: 'netvm', value: 'sys-net', default: true, type: 'vm', revision: 'r' };
    case 'admin.vm.property.GetAll':
      return { properties: { netvm: { value: 'sys-net', default: true, type: 'vm' } }, revision: 'r' };
    case 'admin.property.List':
      return { properties: ['clockvm'] };
    case 'admin.property.Help':
      return { doc: 'VM that keeps the time for dom0.' };
    default:
      return { revision: 'r' };
  }
}

describe('qvm-prefs and qubes-prefs', () => {
  it('gets, sets (none meaning no VM) and resets a property of the VM named, - in names read as _', async () => {
    const ctx = fakeContext(registry);
    await runTool(qvmPrefs, ctx, ['work', 'netvm']);
    await runTool(qvmPrefs, ctx, ['work', 'netvm', 'none']);
    await runTool(qvmPrefs, ctx, ['work', 'virt-mode', '--default']);
    await runTool(qvmPrefs, ctx, ['--set', 'work', 'memory', '800']);
    expect(ctx.out()).toBe('sys-net\n');
    expect(ctx.calls).toEqual([
      { method: 'admin.vm.property.Get', dest: 'work', body: { arg: 'netvm' } },
      { method: 'admin.vm.property.Set', dest: 'work', body: { arg: 'netvm', payload: { value: '' } } },
      { method: 'admin.vm.property.Reset', dest: 'work', body: { arg: 'virt_mode' } },
      { method: 'admin.vm.property.Set', dest: 'work', body: { arg: 'memory', payload: { value: '800' } } },
    ]);
  });

  it('lists every property with one GetAll call, and prints nothing for a default with --hide-default', async () => {
    const ctx = fakeContext(registry);
    await runTool(qvmPrefs, ctx, ['work']);
    await runTool(qvmPrefs, ctx, ['work', 'netvm', '--hide-default']);
    expect(ctx.out()).toBe('netvm  D  sys-net\n');
    expect(ctx.calls.map((c) => c.method)).toEqual(['admin.vm.property.GetAll', 'admin.vm.property.Get']);
  });

  it('works on the global properties through admin.property on dom0', async () => {
    const ctx = fakeContext(registry);
    await runTool(qubesPrefs, ctx, ['--help-properties']);
    await runTool(qubesPrefs, ctx, ['clockvm', 'sys-net']);
    expect(ctx.out()).toBe('  clockvm  VM that keeps the time for dom0.\n');
    expect(ctx.calls.at(-1)).toEqual({ method: 'admin.property.Set', dest: 'dom0', body: { arg: 'clockvm', payload: { value: 'sys-net' } } });
  });

  it('refuses --default without a property, or with a value', async () => {
    await expect(runTool(qvmPrefs, fakeContext(registry), ['work', '-D'])).rejects.toBeInstanceOf(UsageError);
    await expect(runTool(qvmPrefs, fakeContext(registry), ['work', 'memory', '1', '-D'])).rejects.toBeInstanceOf(UsageError);
  });
});
