import { describe, expect, it } from '@jest/globals';
import { QubesError } from '@qubes-bus/contracts';
import { fakeContext, runTool, type Call } from '../testing/fake-context';
import { qvmTags } from './qvm-tags';

function registry(call: Call): unknown {
  switch (call.method) {
    case 'admin.vm.tag.List':
      return { tags: ['b', 'a'], revision: 'r' };
    case 'admin.vm.tag.Get':
      return { present: call.body !== null && (call.body as { arg: string }).arg === 'a' };
    case 'admin.vm.tag.Remove':
      throw new QubesError('TAG_NOT_FOUND', 'absent');
    default:
      return { revision: 'r' };
  }
}

describe('qvm-tags', () => {
  it('lists tags sorted, adds several at once, and prints a tag asked for that the VM has', async () => {
    const ctx = fakeContext(registry);
    await runTool(qvmTags, ctx, ['work']);
    await runTool(qvmTags, ctx, ['work', 'ls', 'a']);
    await runTool(qvmTags, ctx, ['work', 'add', 'x', 'y']);
    expect(ctx.out()).toBe('a\nb\na\n');
    expect(ctx.calls.slice(2).map((c) => c.body)).toEqual([{ arg: 'x' }, { arg: 'y' }]);
  });

  it('fails with TAG_NOT_FOUND when asked for a tag the VM lacks, and deletes an absent tag without complaint', async () => {
    await expect(runTool(qvmTags, fakeContext(registry), ['work', 'list', 'nope'])).rejects.toMatchObject({ code: 'TAG_NOT_FOUND' });
    await runTool(qvmTags, fakeContext(registry), ['work', 'del', 'nope']);
    await expect(runTool(qvmTags, fakeContext(registry), ['work', 'frob', 'x'])).rejects.toMatchObject({ name: 'UsageError' });
  });
});
