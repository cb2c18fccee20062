import { describe, expect, it } from '@jest/globals';
import { QubesError } from '@qubes-bus/contracts';
import { fakeContext, runTool, type Call } from '../testing/fake-context';
import { qvmService } from './qvm-service';

function registry(call: Call): unknown {
  switch (call.method) {
    case 'admin.vm.feature.List':
      return { features: { 'service.crond': '1', 'service.cups': '', gui: '1' }, revision: 'r' };
    case 'admin.vm.feature.Get':
      return { value: '' };
    case 'admin.vm.feature.Remove':
    case 'admin.vm.tag.Remove':
      throw new QubesError(call.method.endsWith('tag.Remove') ? 'TAG_NOT_FOUND' : 'FEATURE_NOT_FOUND', 'absent');
    case 'admin.vm.tag.Get':
      return { present: false };
    default:
      return { revision: 'r' };
  }
}

describe('qvm-service', () => {
  it("sets service.<name> to '1' or '', from a value or --enable/--disable", async () => {
    const ctx = fakeContext(registry);
    await runTool(qvmService, ctx, ['work', 'crond', 'on']);
    await runTool(qvmService, ctx, ['work', 'cups', '--disable']);
    expect(ctx.calls.map((c) => c.body)).toEqual([
      { arg: 'service.crond', payload: { value: '1' } },
      { arg: 'service.cups', payload: { value: '' } },
    ]);
  });

  it('lists the services as on/off, shows one, and unsets one not set without complaint', async () => {
    const ctx = fakeContext(registry);
    await runTool(qvmService, ctx, ['work']);
    await runTool(qvmService, ctx, ['work', 'cups']);
    await runTool(qvmService, ctx, ['work', 'cups', '-D']);
    expect(ctx.out()).toBe('crond  on\ncups   off\noff\n');
  });

  it('refuses two new states at once', async () => {
    await expect(runTool(qvmService, fakeContext(registry), ['work', 'cups', 'on', '--disable'])).rejects.toMatchObject({ name: 'UsageError' });
  });
});
