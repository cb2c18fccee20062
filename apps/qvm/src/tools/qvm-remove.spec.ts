import { describe, expect, it } from '@jest/globals';
import { fakeContext, runTool, type Call } from '../testing/fake-context';
import { qvmRemove } from './qvm-remove';

const registry = (call: Call): unknown =>
  call.method === 'admin.vm.List'
    ? { domains: ['dom0', 'work', 'old'].map((name) => ({ name, class: 'AppVM', state: 'Halted', label: 'red', template: null, netvm: null, revision: 'r' })) }
    : null;

describe('qvm-remove', () => {
  it('refuses to remove without --force when its input is not a terminal, and calls nothing', async () => {
    const ctx = fakeContext(registry, { tty: false });
    await expect(runTool(qvmRemove, ctx, ['work'])).rejects.toMatchObject({ name: 'UsageError', message: expect.stringMatching(/not a terminal: add --force/) });
    expect(ctx.calls).toEqual([]);
  });

  it('asks on a terminal, and removes the VMs one after the other on y', async () => {
    const ctx = fakeContext(registry, { tty: true });
    const removing = runTool(qvmRemove, ctx, ['work', 'old']);
    (ctx.stdin as unknown as { end(text: string): void }).end('y\n');
    await removing;
    expect(ctx.err()).toBe('This will completely remove the selected VM(s)...\n  work\n  old\nAre you sure? [y/N] ');
    expect(ctx.calls.map((c) => `${c.method} ${c.dest}`)).toEqual(['admin.vm.List dom0', 'admin.vm.Remove work', 'admin.vm.Remove old']);
  });

  it('removes nothing when the answer is not y', async () => {
    const ctx = fakeContext(registry, { tty: true });
    const removing = runTool(qvmRemove, ctx, ['work']);
    (ctx.stdin as unknown as { end(text: string): void }).end('n\n');
    await expect(removing).rejects.toMatchObject({ name: 'ToolError', message: 'remove cancelled' });
    expect(ctx.calls.map((c) => c.method)).toEqual(['admin.vm.List']);
  });

  it('checks every name before removing any, and never asks to remove dom0', async () => {
    const ctx = fakeContext(registry);
    await expect(runTool(qvmRemove, ctx, ['-f', 'work', 'nope'])).rejects.toMatchObject({ code: 'VM_NOT_FOUND', message: 'no such domain: nope' });
    expect(ctx.calls.map((c) => c.method)).toEqual(['admin.vm.List']);
    await expect(runTool(qvmRemove, fakeContext(registry), ['-f', 'dom0'])).rejects.toMatchObject({ code: 'VM_CLASS_INVALID' });
  });
});
