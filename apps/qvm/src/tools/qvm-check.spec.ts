import { describe, expect, it } from '@jest/globals';
import { fakeContext, runSeen, vmSummary, type Call } from '../testing/fake-context';
import { qvmCheck } from './qvm-check';

const provides = (value: boolean) => ({ provides_network: { value, default: !value, type: 'bool' as const } });
const domains = [
  vmSummary('dom0', { class: 'AdminVM', state: 'Running' }),
  vmSummary('work', { state: 'Running', netvm: 'sys-net' }),
  vmSummary('vault', { netvm: null }),
  vmSummary('sys-net', { state: 'Running', netvm: null }),
  vmSummary('mail', { state: 'Paused', netvm: 'sys-net' }),
  vmSummary('fedora', { class: 'TemplateVM' }),
];

function registry(call: Call): unknown {
  if (call.method !== 'admin.vm.List') throw new Error(`unexpected ${call.method}`);
  const asked = (call.body as { payload?: { properties: string[] } }).payload?.properties ?? [];
  if (!asked.includes('provides_network')) return { domains };
  return { domains: domains.map((vm) => ({ ...vm, properties: provides(vm.name === 'sys-net') })) };
}

const check = (...argv: string[]) => runSeen(qvmCheck, fakeContext(registry), argv);

describe('qvm-check', () => {
  it('says the qubes exist, status 0', async () => {
    expect(await check('work')).toEqual({ status: 0, stdout: 'work exists\n', stderr: '' });
    expect(await check('work', 'vault')).toEqual({ status: 0, stdout: 'work, vault exist\n', stderr: '' });
  });

  it('fails with an error, status 1, for a qube that does not exist', async () => {
    expect(await check('work', 'nope')).toEqual({ status: 1, stdout: '', stderr: 'ERROR: no such domain: nope\n' });
  });

  it('--running: status 0 when all run (a paused qube runs), 3 when some do, 1 when none does (R4.1)', async () => {
    expect(await check('--running', 'work', 'mail')).toEqual({ status: 0, stdout: 'work, mail are running\n', stderr: '' });
    expect(await check('--running', 'work', 'vault')).toEqual({ status: 3, stdout: 'work is running\nvault is not running\n', stderr: '' });
    expect(await check('--running', 'vault', 'fedora')).toEqual({ status: 1, stdout: 'vault, fedora are not running\n', stderr: '' });
  });

  it('--paused holds for a paused qube only, --template for a TemplateVM', async () => {
    expect(await check('--paused', 'mail')).toEqual({ status: 0, stdout: 'mail is paused\n', stderr: '' });
    expect(await check('--paused', 'work')).toEqual({ status: 1, stdout: 'work is not paused\n', stderr: '' });
    expect(await check('--template', 'fedora', 'work', 'vault')).toEqual({ status: 3, stdout: 'fedora is a template\nwork, vault are not templates\n', stderr: '' });
  });

  it('--networked: a qube with a netvm, or one that provides the network', async () => {
    expect(await check('--networked', 'work', 'sys-net')).toEqual({ status: 0, stdout: 'work, sys-net are networked\n', stderr: '' });
    expect(await check('--networked', 'vault')).toEqual({ status: 1, stdout: 'vault is not networked\n', stderr: '' });
  });

  it('combines checks: a qube passes when every check holds; each check says who fails it', async () => {
    expect(await check('--running', '--networked', 'work', 'sys-net', 'vault', 'mail')).toEqual({
      status: 3,
      stdout: 'work, sys-net, mail are running and networked\nvault is not running\nvault is not networked\n',
      stderr: '',
    });
  });

  it('prints nothing with -q: the status tells', async () => {
    expect(await check('-q', '--running', 'work', 'vault')).toEqual({ status: 3, stdout: '', stderr: '' });
    expect(await check('-q', 'work')).toEqual({ status: 0, stdout: '', stderr: '' });
  });

  it('checks every qube but dom0 with --all', async () => {
    expect(await check('--all', '--exclude', 'fedora', '--running')).toEqual({
      status: 3,
      stdout: 'work, sys-net, mail are running\nvault is not running\n',
      stderr: '',
    });
  });
});
