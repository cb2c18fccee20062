import { describe, expect, it } from '@jest/globals';
import type { VmSummary } from '@qubes-bus/contracts';
import { fakeContext, registryError, runSeen, runTool, type Call } from '../testing/fake-context';
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

  it('--host prints the host from admin.host.Info: memory in MiB, CPU% with one decimal, - before the load is known', async () => {
    const host = { hostname: 'dom0-host', cpus: 8, mhz: 2400, memory_total: 16 * 1024 * 1024, memory_free: 5 * 1024 * 1024 + 1000, running: 3 };
    const ctx = fakeContext((call) => (call.method === 'admin.host.Info' ? { ...host, cpu_usage: 12.345 } : registry(call)));
    expect(await runSeen(qvmLs, ctx, ['--host'])).toEqual({
      status: 0,
      stdout: 'HOST       CPUS  CPU%  MEMORY  FREE  RUNNING\ndom0-host  8     12.3  16384   5120  3\n',
      stderr: '',
    });
    expect(ctx.calls.map((c) => c.method)).toEqual(['admin.host.Info']);
    const first = fakeContext(() => ({ ...host, cpu_usage: null }));
    expect((await runSeen(qvmLs, first, ['--host', '--raw-data'])).stdout).toBe('dom0-host|8|-|16384|5120|3\n');
  });

  it('--host fails as other tools do when the registry has no hypervisor, and takes no qube names', async () => {
    const offline = fakeContext(() => {
      throw registryError('VMM_OFFLINE', 'no hypervisor: LIBVIRT_URI is not set');
    });
    expect(await runSeen(qvmLs, offline, ['--host'])).toEqual({ status: 1, stdout: '', stderr: 'ERROR: no hypervisor: LIBVIRT_URI is not set\n' });
    expect(await runSeen(qvmLs, fakeContext(registry), ['--host', 'work'])).toMatchObject({ status: 2, stderr: 'ERROR: --host shows the host, not qubes: give no qube names with it\n' });
  });
});
