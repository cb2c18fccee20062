import { describe, expect, it } from '@jest/globals';
import { QubesError } from '@qubes-bus/contracts';
import { fakeContext, runTool, type Call } from '../testing/fake-context';
import { qvmFeatures } from './qvm-features';

function registry(call: Call): unknown {
  switch (call.method) {
    case 'admin.vm.feature.List':
      return { features: { 'service.cups': '', gui: '1' }, revision: 'r' };
    case 'admin.vm.feature.Remove':
      throw new QubesError('FEATURE_NOT_FOUND', 'absent');
    default:
      return { revision: 'r' };
  }
}

describe('qvm-features', () => {
  it('lists features by name with their values, an empty value left empty', async () => {
    const ctx = fakeContext(registry);
    await runTool(qvmFeatures, ctx, ['work']);
    expect(ctx.out()).toBe('gui           1\nservice.cups\n');
  });

  it('sets a value as given, and unsets one that is not set without complaint (--unset, --delete, -D)', async () => {
    const ctx = fakeContext(registry);
    await runTool(qvmFeatures, ctx, ['work', 'menu-items', 'a b']);
    for (const flag of ['--unset', '--delete', '-D']) await runTool(qvmFeatures, ctx, ['work', 'gui', flag]);
    expect(ctx.calls.map((c) => [c.method, c.body])).toEqual([
      ['admin.vm.feature.Set', { arg: 'menu-items', payload: { value: 'a b' } }],
      ...Array.from({ length: 3 }, () => ['admin.vm.feature.Remove', { arg: 'gui' }]),
    ]);
  });

  it('refuses --unset without a feature, or with a value, before any call', async () => {
    for (const argv of [['work', '-D'], ['work', 'gui', '1', '-D']]) {
      const ctx = fakeContext(registry);
      await expect(runTool(qvmFeatures, ctx, argv)).rejects.toMatchObject({ name: 'UsageError' });
      expect(ctx.calls).toEqual([]);
    }
  });
});
