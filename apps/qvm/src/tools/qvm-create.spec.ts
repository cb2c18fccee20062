import { describe, expect, it } from '@jest/globals';
import { UsageError } from '../errors';
import { fakeContext, runTool } from '../testing/fake-context';
import { parseProperties, qvmCreate } from './qvm-create';

const created = () => ({ name: 'x', qid: 1, uuid: 'u', revision: 'r' });

describe('qvm-create', () => {
  it('creates an AppVM by default, with its template, label, pool and properties in one call', async () => {
    const ctx = fakeContext(created);
    await runTool(qvmCreate, ctx, ['--template', 'fedora', '--label', 'red', '--property', 'memory=800', '--prop', 'kernel-opts=a=b', '-P', 'lvm', 'work']);
    expect(ctx.calls).toEqual([
      {
        method: 'admin.vm.Create.AppVM',
        dest: 'dom0',
        body: { arg: 'fedora', payload: { name: 'work', label: 'red', properties: { memory: '800', kernel_opts: 'a=b' }, pool: 'lvm' } },
      },
    ]);
  });

  it('takes --class, --standalone and --disp (which brings the label red)', async () => {
    const ctx = fakeContext(created);
    await runTool(qvmCreate, ctx, ['-C', 'TemplateVM', '-l', 'black', 't']);
    await runTool(qvmCreate, ctx, ['--standalone', '-l', 'black', 's']);
    await runTool(qvmCreate, ctx, ['--disp', 'd']);
    expect(ctx.calls.map((c) => c.method)).toEqual(['admin.vm.Create.TemplateVM', 'admin.vm.Create.StandaloneVM', 'admin.vm.Create.DispVM']);
    expect(ctx.calls[2]?.body).toEqual({ payload: { name: 'd', label: 'red' } });
  });

  it('refuses, as usage errors and before any call, a missing label or name, an unknown class, a per-volume pool', async () => {
    for (const argv of [['work'], ['-l', 'red'], ['-C', 'NetVM', '-l', 'red', 'n'], ['-l', 'red', '-P', 'root=lvm', 'w'], ['-l', 'red', '--property', 'memory', 'w']]) {
      const ctx = fakeContext(created);
      await expect(runTool(qvmCreate, ctx, argv)).rejects.toBeInstanceOf(UsageError);
      expect(ctx.calls).toEqual([]);
    }
  });

  it('reads --property NAME=VALUE, the value keeping any further =', () => {
    expect(parseProperties(['a=1', 'b=x=y', 'c='])).toEqual({ a: '1', b: 'x=y', c: '' });
    expect(() => parseProperties(['=1'])).toThrow('--property takes NAME=VALUE, not "=1"');
  });
});
