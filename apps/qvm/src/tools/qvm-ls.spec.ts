import { describe, expect, it } from '@jest/globals';
import type { VmSummary } from '@qubes-bus/contracts';
import { fakeContext, runTool, type Call } from '../testing/fake-context';
import { qvmLs } from './qvm-ls';

const domains: VmSummary[] = [
  { name: 'dom0', class: 'AdminVM', state: 'Running', label: 'black', template: null, netvm: null, revision: 'a' },
  { name: 'work', class: 'AppVM', state: 'Halted', label: 'blue', template: 'fedora', netvm: 'sys-net', revision: 'b' },
  { name: 'vault', class: 'AppVM', state: 'Halted', label: 'black', template: 'fedora', netvm: null, revision: 'c' },
];

function registry(call: Call): unknown {
  if (call.method === 'admin.vm.List') return { domains };
  if (call.method === 'admin.vm.tag.List') return { tags: call.dest === 'vault' ? ['secret'] : [], revision: 'x' };
  throw new Error(`unexpected ${call.method}`);
}

describe('qvm-ls', () => {
  it('lists every VM with one admin.vm.List call asking for no property', async () => {
    const ctx = fakeContext(registry);
    await runTool(qvmLs, ctx, []);
    expect(ctx.calls).toEqual([{ method: 'admin.vm.List', body: {}, dest: 'dom0' }]);
    expect(ctx.out().split('\n')[0]).toBe('NAME   STATE    CLASS    LABEL  TEMPLATE  NETVM');
  });

  it('asks for the properties of --fields in the same single call', async () => {
    const ctx = fakeContext(registry);
    await runTool(qvmLs, ctx, ['--fields', 'name,memory,vcpus', '--halted']);
    expect(ctx.calls).toEqual([{ method: 'admin.vm.List', body: { payload: { properties: ['vcpus'] } }, dest: 'dom0' }]);
    expect(ctx.out()).toBe('NAME   MEMORY  VCPUS\nvault  -       -\nwork   -       -\n');
  });

  it('asks for tags only with --tags, one call per VM still listed', async () => {
    const ctx = fakeContext(registry);
    await runTool(qvmLs, ctx, ['--tags', 'secret', '--class', 'AppVM', '--raw-list']);
    expect(ctx.calls.map((c) => `${c.method} ${c.dest}`).sort()).toEqual(['admin.vm.List dom0', 'admin.vm.tag.List vault', 'admin.vm.tag.List work']);
    expect(ctx.out()).toBe('vault\n');
  });

  it('lists the VMs named, and fails with VM_NOT_FOUND for a name that is not a VM', async () => {
    const ctx = fakeContext(registry);
    await runTool(qvmLs, ctx, ['--raw-data', 'work', 'dom0']);
    expect(ctx.out()).toBe('dom0|Running|AdminVM|black|-|-\nwork|Halted|AppVM|blue|fedora|sys-net\n');
    await expect(runTool(qvmLs, fakeContext(registry), ['nope'])).rejects.toMatchObject({ code: 'VM_NOT_FOUND', message: 'no such domain: nope' });
  });

  it('refuses --format with --fields, as a usage error', async () => {
    await expect(runTool(qvmLs, fakeContext(registry), ['--format', 'full', '--fields', 'name'])).rejects.toMatchObject({ name: 'UsageError' });
  });
});
