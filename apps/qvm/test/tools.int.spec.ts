import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { buildBundles, errorLine, startStack, toolsOf, type Stack } from './harness';

/**
 * The qvm-* tools as a user runs them, against a real nats-server and vm-registry. The tests of
 * this file build on each other: the first creates the VMs the others use.
 */
let stack: Stack;

const { qvm, ok } = toolsOf(() => stack);

beforeAll(async () => {
  await buildBundles();
  stack = await startStack();
}, 60_000);

afterAll(async () => {
  await stack?.stop();
});

describe('qvm-create and qvm-ls', () => {
  it('creates a TemplateVM and AppVMs, and qvm-ls lists them sorted by name in the simple format', async () => {
    await ok('qvm-create', '--class', 'TemplateVM', '--label', 'black', 'fedora-40');
    await ok('qubes-prefs', 'default_template', 'fedora-40');
    await ok('qvm-create', '-l', 'red', '--property', 'provides_network=True', '--property', 'netvm=', 'sys-net');
    await ok('qubes-prefs', 'default_netvm', 'sys-net');
    await ok('qvm-create', '--label', 'blue', '--prop', 'memory=800', 'work');
    await ok('qvm-create', '--template', 'fedora-40', '--label', 'black', '--property', 'netvm=', 'vault');
    expect(await ok('qvm-ls')).toBe(
      [
        'NAME       STATE    CLASS       LABEL  TEMPLATE   NETVM',
        'dom0       Running  AdminVM     black  -          -',
        'fedora-40  Halted   TemplateVM  black  -          -',
        'sys-net    Halted   AppVM       red    fedora-40  -',
        'vault      Halted   AppVM       black  fedora-40  -',
        'work       Halted   AppVM       blue   fedora-40  sys-net',
        '',
      ].join('\n'),
    );
  });

  it('refuses a second VM of the same name with one ERROR line and status 1', async () => {
    const result = await qvm('qvm-create', '-l', 'red', 'work');
    expect(result.code).toBe(1);
    expect(errorLine(result)).toMatch(/^ERROR: .*work/);
  });

  it('refuses qvm-create without a label as a usage error (status 2)', async () => {
    const result = await qvm('qvm-create', 'nolabel');
    expect(result.code).toBe(2);
    expect(errorLine(result)).toBe('ERROR: --label option is mandatory');
  });

  it('prints the full format with qids and UUIDs, and the network format with addresses and gateways', async () => {
    const full = (await ok('qvm-ls', '--format', 'full')).split('\n');
    expect(full[0]).toBe('NAME       STATE    CLASS       LABEL  QID  XID  UUID');
    expect(full[1]).toBe('dom0       Running  AdminVM     black  0    -    00000000-0000-0000-0000-000000000000');
    expect(full[5]).toMatch(/^work {7}Halted {3}AppVM {7}blue {3}\d+ +- +[0-9a-f-]{36}$/);
    const network = await ok('qvm-ls', '--format', 'network', 'work', 'sys-net');
    expect(network).toMatch(/^NAME +STATE +NETVM +IP +IPBACK +GATEWAY\n/);
    expect(network).toMatch(/\nsys-net +Halted +- +(10\.137\.\d+\.\d+) +- +-\nwork +Halted +sys-net +10\.137\.\d+\.\d+ +- +10\.137\.\d+\.\d+\n$/);
    const [, sysNetIp] = /\nsys-net +Halted +- +(\S+)/.exec(network) ?? [];
    expect(network.trimEnd().endsWith(` ${sysNetIp}`)).toBe(true);
  });

  it('filters by class and power state, sorts by a column, reversed, and prints raw data for scripts', async () => {
    expect(await ok('qvm-ls', '--raw-list', '--class', 'AppVM')).toBe('sys-net\nvault\nwork\n');
    expect(await ok('qvm-ls', '--raw-list', '--class', 'TemplateVM', '--class', 'AdminVM')).toBe('dom0\nfedora-40\n');
    expect(await ok('qvm-ls', '--running', '--raw-list')).toBe('dom0\n');
    expect(await ok('qvm-ls', '--halted', '--raw-data', '--fields', 'name,label,netvm', '--sort', 'label', '--reverse')).toBe(
      'sys-net|red|-\nwork|blue|sys-net\nfedora-40|black|-\nvault|black|-\n',
    );
    expect(await ok('qvm-ls', '--fields', 'name,qid,memory', '--sort', 'QID', '--class', 'AppVM')).toMatch(/^NAME +QID +MEMORY\nsys-net .*\nwork .*\nvault .*\n$/);
  });

  it('refuses an unknown VM, an unknown column and a sort by a column not shown, each with one ERROR line', async () => {
    const unknownVm = await qvm('qvm-ls', 'nosuchvm');
    expect([unknownVm.code, errorLine(unknownVm)]).toEqual([1, 'ERROR: no such domain: nosuchvm']);
    const unknownColumn = await qvm('qvm-ls', '--fields', 'name,frobnicate');
    expect(unknownColumn.code).toBe(1);
    expect(errorLine(unknownColumn)).toMatch(/frobnicate/);
    const badSort = await qvm('qvm-ls', '--sort', 'uuid');
    expect(badSort.code).toBe(2);
    expect(errorLine(badSort)).toMatch(/^ERROR: cannot sort by UUID/);
  });
});

describe('qvm-prefs and qubes-prefs', () => {
  it('gets a property, lists all with D for defaults and - for set values, and sets and resets one', async () => {
    expect(await ok('qvm-prefs', 'work', 'memory')).toBe('800\n');
    const listing = await ok('qvm-prefs', 'work');
    expect(listing).toMatch(/^memory +- {2}800$/m);
    expect(listing).toMatch(/^netvm +D {2}sys-net$/m);
    expect(listing).toMatch(/^template +- {2}fedora-40$/m);
    expect(listing).toMatch(/^backup_timestamp +U$/m);
    await ok('qvm-prefs', 'work', 'memory', '1000');
    expect(await ok('qvm-prefs', 'work', 'memory')).toBe('1000\n');
    await ok('qvm-prefs', 'work', 'memory', '--default');
    expect(await ok('qvm-prefs', 'work', 'memory')).toBe('400\n');
    expect(await ok('qvm-prefs', '--hide-default', 'work', 'memory')).toBe('');
    expect(await ok('qvm-prefs', '--hide-default', 'work')).not.toMatch(/^memory/m);
  });

  it("takes none for no netvm, and prints nothing for it, as Qubes", async () => {
    await ok('qvm-prefs', 'work', 'netvm', 'none');
    expect(await ok('qvm-prefs', 'work', 'netvm')).toBe('');
    expect(await ok('qvm-prefs', 'work')).toMatch(/^netvm +- {2}None$/m);
    await ok('qvm-prefs', 'work', 'netvm', '-D');
    expect(await ok('qvm-prefs', 'work', 'netvm')).toBe('sys-net\n');
  });

  it('explains properties with --help-properties', async () => {
    expect(await ok('qvm-prefs', '--help-properties', 'work')).toMatch(/^ {2}memory +Memory \(MiB\) the VM starts with\.$/m);
  });

  it('shows and sets global properties with qubes-prefs, and VMs take their defaults from them', async () => {
    expect(await ok('qubes-prefs', 'default_template')).toBe('fedora-40\n');
    expect(await ok('qubes-prefs')).toMatch(/^default_netvm +- {2}sys-net$/m);
    await ok('qubes-prefs', 'default_qrexec_timeout', '90');
    expect(await ok('qvm-prefs', 'work', 'qrexec_timeout')).toBe('90\n');
    await ok('qubes-prefs', '-D', 'default_qrexec_timeout');
    expect(await ok('qubes-prefs', 'default_qrexec_timeout')).toBe('60\n');
  });

  it('refuses an unknown VM, an unknown property and a value of the wrong type with one ERROR line and status 1', async () => {
    const cases: Array<[string[], RegExp]> = [
      [['qvm-prefs', 'nosuchvm', 'memory'], /^ERROR: no such domain: nosuchvm$/],
      [['qvm-prefs', 'work', 'frobnicate'], /^ERROR: .*frobnicate/],
      [['qvm-prefs', 'work', 'memory', 'lots'], /^ERROR: memory: "lots" is not an integer$/],
      [['qvm-prefs', 'work', 'netvm', 'fedora-40'], /^ERROR: .*does not provide network/],
      [['qubes-prefs', 'frobnicate'], /^ERROR: .*frobnicate/],
    ];
    for (const [[name, ...args], message] of cases) {
      const result = await qvm(name!, ...args);
      expect({ args, code: result.code, stdout: result.stdout }).toEqual({ args, code: 1, stdout: '' });
      expect(errorLine(result)).toMatch(message);
    }
    expect(await ok('qvm-prefs', 'work', 'memory')).toBe('400\n');
  });
});

describe('qvm-features, qvm-service and qvm-tags', () => {
  it('sets, lists, shows and unsets features', async () => {
    await ok('qvm-features', 'work', 'gui', '1');
    await ok('qvm-features', 'work', 'menu-items', 'firefox.desktop xterm.desktop');
    expect(await ok('qvm-features', 'work')).toBe('gui         1\nmenu-items  firefox.desktop xterm.desktop\n');
    expect(await ok('qvm-features', 'work', 'gui')).toBe('1\n');
    await ok('qvm-features', '--unset', 'work', 'gui');
    await ok('qvm-features', 'work', 'gui', '-D'); // unsetting again is fine, as in Qubes
    const missing = await qvm('qvm-features', 'work', 'gui');
    expect([missing.code, errorLine(missing)]).toEqual([1, 'ERROR: work has no feature gui']);
  });

  it("keeps services as service.<name> features, '1' for on and '' for off", async () => {
    await ok('qvm-service', 'work', 'crond', 'on');
    await ok('qvm-service', 'work', 'cups', 'off');
    await ok('qvm-service', 'work', '--enable', 'clocksync');
    expect(await ok('qvm-service', 'work')).toBe('clocksync  on\ncrond      on\ncups       off\n');
    expect(await ok('qvm-service', 'work', 'cups')).toBe('off\n');
    expect(await ok('qvm-features', 'work', 'service.crond')).toBe('1\n');
    expect(await ok('qvm-features', 'work', 'service.cups')).toBe('\n');
    await ok('qvm-service', 'work', 'cups', '--unset');
    expect(await ok('qvm-service', '-l', 'work')).toBe('clocksync  on\ncrond      on\n');
    const bad = await qvm('qvm-service', 'work', 'crond', 'perhaps');
    expect(bad.code).toBe(2);
    expect(errorLine(bad)).toMatch(/^ERROR: "perhaps" is not a service state/);
  });

  it('adds, lists, queries and removes tags, and qvm-ls --tags lists the VMs with any of them', async () => {
    await ok('qvm-tags', 'work', 'add', 'project-x', 'audited');
    await ok('qvm-tags', 'vault', 'add', 'secret');
    expect(await ok('qvm-tags', 'work')).toBe('audited\nproject-x\n');
    expect(await ok('qvm-tags', 'work', 'list', 'audited')).toBe('audited\n');
    expect(await ok('qvm-ls', '--raw-list', '--tags', 'secret', '--tags', 'project-x')).toBe('vault\nwork\n');
    await ok('qvm-tags', 'work', 'del', 'audited');
    const gone = await qvm('qvm-tags', 'work', 'list', 'audited');
    expect([gone.code, errorLine(gone)]).toEqual([1, 'ERROR: work has no tag audited']);
  });
});

describe('qvm-remove', () => {
  it('refuses to remove without --force when not run on a terminal, and removes nothing', async () => {
    const result = await qvm('qvm-remove', 'vault');
    expect(result.code).toBe(2);
    expect(errorLine(result)).toMatch(/not a terminal: add --force/);
    expect(await ok('qvm-ls', '--raw-list', 'vault')).toBe('vault\n');
  });

  it('refuses to remove a template in use, naming its users, then removes VMs with --force', async () => {
    const inUse = await qvm('qvm-remove', '--force', 'fedora-40');
    expect(inUse.code).toBe(1);
    expect(errorLine(inUse)).toMatch(/^ERROR: fedora-40 is in use by .*work \(template\)/);
    await ok('qvm-remove', '-f', 'vault');
    expect(await ok('qvm-ls', '--raw-list')).toBe('dom0\nfedora-40\nsys-net\nwork\n');
    const again = await qvm('qvm-remove', '-f', 'vault');
    expect([again.code, errorLine(again)]).toEqual([1, 'ERROR: no such domain: vault']);
  });
});
