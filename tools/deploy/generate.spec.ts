import { afterEach, describe, expect, it } from '@jest/globals';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { buildBundles, REPO_ROOT, tmpDataDir, type TmpDir } from '@qubes-bus/testing';
import { COMMAND, COMPOSE_FILE, deployFiles, INSTALL_DIR, NODE, serviceApps, SYSTEMD_DIR, TARGET, unitName } from './generate';
import { SERVICES, type Deployment } from './services';

const SYSTEMD_ANALYZE = '/usr/bin/systemd-analyze';

let dir: TmpDir | undefined;
afterEach(() => dir?.remove());

/** The values of `key` in `[section]` of a unit file, each space-separated word apart. */
function values(text: string, section: string, key: string): string[] {
  let current = '';
  const found: string[] = [];
  for (const line of text.split('\n')) {
    const header = /^\[(.+)\]$/.exec(line);
    if (header !== null) current = header[1]!;
    else if (current === section && line.startsWith(`${key}=`)) found.push(...line.slice(key.length + 1).split(' ').filter(Boolean));
  }
  return found;
}

/** systemd-analyze verify on these unit files, with what it printed; `--man=no`: no man pages here. */
function verify(files: readonly string[]): { status: number | null; output: string } {
  const run = spawnSync(SYSTEMD_ANALYZE, ['verify', '--man=no', '--recursive-errors=yes', ...files], { encoding: 'utf8' });
  if (run.error !== undefined) throw run.error;
  return { status: run.status, output: `${run.stdout}${run.stderr}`.trim() };
}

describe('the deploy files', () => {
  it(`are what \`${COMMAND}\` writes: no hand edit, no forgotten run, no unit left over`, () => {
    const files = deployFiles(REPO_ROOT);
    for (const [file, text] of files) {
      expect({ file, text: existsSync(path.join(REPO_ROOT, file)) ? readFileSync(path.join(REPO_ROOT, file), 'utf8') : null }).toEqual({ file, text });
    }
    const inRepo = readdirSync(path.join(REPO_ROOT, SYSTEMD_DIR)).map((f) => `${SYSTEMD_DIR}/${f}`);
    expect(inRepo.sort()).toEqual([...files.keys()].filter((f) => f.startsWith(`${SYSTEMD_DIR}/`)).sort());
  });

  it('give every service in apps/ a unit in qubes-bus.target and a compose entry, and none to the tools', () => {
    const apps = serviceApps(REPO_ROOT);
    expect(apps).toEqual(expect.arrayContaining(['storage', 'vm-registry']));
    expect(apps).not.toContain('qvm');
    const targetText = readFileSync(path.join(REPO_ROOT, SYSTEMD_DIR, TARGET), 'utf8');
    expect(values(targetText, 'Unit', 'Wants').sort()).toEqual(apps.map(unitName).sort());
    expect(values(targetText, 'Install', 'WantedBy')).toEqual(['multi-user.target']);
    const compose = readFileSync(path.join(REPO_ROOT, COMPOSE_FILE), 'utf8');
    for (const app of apps) {
      const text = readFileSync(path.join(REPO_ROOT, SYSTEMD_DIR, unitName(app)), 'utf8');
      expect({ app, partOf: values(text, 'Unit', 'PartOf'), wantedBy: values(text, 'Install', 'WantedBy') }).toEqual({ app, partOf: [TARGET], wantedBy: [TARGET] });
      expect(values(text, 'Service', 'ExecStart')).toEqual([NODE, '--enable-source-maps', `${INSTALL_DIR}/apps/${app}/main.js`]);
      expect(values(text, 'Service', 'EnvironmentFile')).toEqual(['-/etc/qubes-bus/qubes-bus.env']);
      expect(compose).toContain(`\n  ${app}:\n    build:\n      context: ..\n      dockerfile: docker/service.Dockerfile\n      args:\n        APP: ${app}\n`);
      // A service ordered after another one of ours starts after it under compose too.
      for (const after of values(text, 'Unit', 'After').filter((u) => u.startsWith('qubes-bus-'))) {
        expect(apps.map(unitName)).toContain(after);
      }
    }
  });

  it(
    'pass systemd-analyze verify, as committed but for ExecStart, pointed at this machine\'s node and the built bundles',
    async () => {
      // The units name /usr/bin/node and the installed bundles (/usr/lib/qubes-bus); here they are
      // process.execPath and dist/, which the package installs there. Only those two paths change.
      await buildBundles();
      dir = tmpDataDir('qubes-bus-units-');
      const copies: string[] = [];
      for (const file of readdirSync(path.join(REPO_ROOT, SYSTEMD_DIR))) {
        let text = readFileSync(path.join(REPO_ROOT, SYSTEMD_DIR, file), 'utf8');
        const exec = /^ExecStart=(\S+) --enable-source-maps (\S+)$/m.exec(text);
        if (exec !== null) {
          const bundle = path.join(REPO_ROOT, 'dist', path.posix.relative(INSTALL_DIR, exec[2]!));
          expect({ file, bundle, built: existsSync(bundle) }).toEqual({ file, bundle, built: true });
          const quote = (p: string): string => (/\s/.test(p) ? `"${p}"` : p);
          text = text.replace(exec[0], `ExecStart=${quote(process.execPath)} --enable-source-maps ${quote(bundle)}`);
        }
        writeFileSync(path.join(dir.path, file), text);
        copies.push(path.join(dir.path, file));
      }
      expect(copies.length).toBe(Object.keys(SERVICES).length + 1);
      // Any line it prints is a finding (an unknown key or a bad value is only a warning to it).
      expect(verify(copies)).toEqual({ status: 0, output: '' });
    },
    120_000,
  );

  it('are verified by a systemd-analyze that reports a unit it cannot run (so silence above means something)', () => {
    dir = tmpDataDir('qubes-bus-units-');
    const text = readFileSync(path.join(REPO_ROOT, SYSTEMD_DIR, unitName('vm-registry')), 'utf8')
      .replace(/^ExecStart=\S+/m, `ExecStart=${path.join(dir.path, 'no-node')}`)
      .replace('KillSignal=SIGTERM', 'KillSignal=SIGNOPE\nKillSignalling=SIGTERM');
    const file = path.join(dir.path, unitName('vm-registry'));
    writeFileSync(file, text);
    const { status, output } = verify([file]);
    expect(status).not.toBe(0);
    expect(output).toContain('no-node is not executable');
    expect(output).toContain("Unknown key 'KillSignalling'");
    expect(output).toContain('Failed to parse signal name');
  });
});

describe('the deploy-file generator', () => {
  /** A workspace with these apps: each with a src/main.ts and its tag. */
  function workspace(apps: Record<string, string>): string {
    dir = tmpDataDir('qubes-bus-deploy-');
    for (const [app, tag] of Object.entries(apps)) {
      mkdirSync(path.join(dir.path, 'apps', app, 'src'), { recursive: true });
      writeFileSync(path.join(dir.path, 'apps', app, 'src/main.ts'), '');
      writeFileSync(path.join(dir.path, 'apps', app, 'package.json'), JSON.stringify({ name: `@x/${app}`, nx: { tags: [tag] } }));
    }
    mkdirSync(path.join(dir.path, 'apps/lib-like'), { recursive: true }); // no main.ts: no service
    return dir.path;
  }

  it('refuses a service in apps/ that has no deployment, naming it, and asks none of the tools', () => {
    const root = workspace({ 'vm-registry': 'type:service', storage: 'type:service', backup: 'type:service', qvm: 'type:cli' });
    expect(() => deployFiles(root)).toThrow(/^cannot write the deploy files:\n {2}apps\/backup has a src\/main.ts but no deployment in tools\/deploy\/services.ts[^\n]*$/);
  });

  it('refuses an app with a main.ts and no tag: it counts as a service', () => {
    const root = workspace({ 'vm-registry': 'type:service', storage: 'type:service', firewall: '' });
    expect(() => deployFiles(root)).toThrow(/apps\/firewall has a src\/main.ts but no deployment/);
  });

  it('refuses a deployment of no service, and an ordering after a service it does not deploy', () => {
    const root = workspace({ 'vm-registry': 'type:service', storage: 'type:service', qvm: 'type:cli' });
    const storage = SERVICES['storage']!;
    const services: Record<string, Deployment> = {
      ...SERVICES,
      qvm: storage,
      storage: { ...storage, after: { services: ['device-watcher'], host: [] } },
    };
    expect(() => deployFiles(root, services)).toThrow(/deploys 'qvm', which is no service in apps\//);
    expect(() => deployFiles(root, services)).toThrow(/storage: starts after 'device-watcher', which is not deployed/);
  });

  it('refuses two services sharing a RuntimeDirectory, which systemd removes when either stops', () => {
    const root = workspace({ 'vm-registry': 'type:service', storage: 'type:service' });
    const services = { ...SERVICES, 'vm-registry': { ...SERVICES['vm-registry']!, runtimeDirectory: SERVICES['storage']!.runtimeDirectory! } };
    expect(() => deployFiles(root, services)).toThrow(/RuntimeDirectory=qubes-bus is storage's too/);
  });

  it('writes a unit, a place in the target and a compose entry for a new service from its entry alone', () => {
    const root = workspace({ 'vm-registry': 'type:service', storage: 'type:service', backup: 'type:service' });
    const files = deployFiles(root, {
      ...SERVICES,
      backup: {
        description: 'backups of VMs',
        notes: [],
        runAs: { user: 'qubes-backup', group: 'qubes' },
        environment: [],
        after: { services: ['storage'], host: [] },
        writes: { dataDirs: ['/var/lib/qubes-backup'] },
        stopTimeoutSec: 60,
        compose: { packages: [], volumes: ['backups:/var/lib/qubes-backup'], environment: [] },
      },
    });
    const unit = files.get(`${SYSTEMD_DIR}/qubes-bus-backup.service`)!;
    expect(values(unit, 'Service', 'User')).toEqual(['qubes-backup']);
    expect(values(unit, 'Service', 'ReadWritePaths')).toEqual(['/var/lib/qubes-backup']);
    expect(values(unit, 'Unit', 'After')).toEqual(['nats-server.service', 'qubes-bus-storage.service']);
    expect(values(files.get(`${SYSTEMD_DIR}/${TARGET}`)!, 'Unit', 'Wants')).toContain('qubes-bus-backup.service');
    const compose = files.get(COMPOSE_FILE)!;
    expect(compose).toContain('        APP: backup\n        PACKAGES: ""\n        DATA_DIRS: /var/lib/qubes-backup\n    environment:');
    expect(compose).toMatch(/\nvolumes:\n {2}nats-data:\n {2}backups:\n {2}qubes-data:\n$/);
  });
});
