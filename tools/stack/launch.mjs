#!/usr/bin/env node
// `npm start` and `npm test` begin here, on a machine that may have nothing yet: plain
// JavaScript with no dependencies. It installs what is missing (npm packages; nats-server,
// libvirt, QEMU and tini from Debian's packages), builds, then starts the embedded stack.
//
//   node tools/stack/launch.mjs            prepare, build, run the stack (npm start)
//   node tools/stack/launch.mjs --prepare  prepare only (npm test, .ci/run)
import { execFileSync, spawnSync } from 'node:child_process';
import { accessSync, constants, existsSync, readFileSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const prepareOnly = process.argv.includes('--prepare');

function say(line) {
  process.stderr.write(`qubes-bus: ${line}\n`);
}

function fatal(line) {
  process.stderr.write(`ERROR: ${line}\n`);
  process.exit(1);
}

const [major] = process.versions.node.split('.').map(Number);
if (major < 20) fatal(`Node.js 20 or later is needed; this is ${process.version}`);

// --- a stack already running here: say so before installing or rebuilding anything --------
if (!prepareOnly) {
  const pidFile = path.join(path.resolve(process.env.QUBES_VAR_DIR ?? path.join(root, 'var')), 'stack.pid');
  let pid = NaN;
  try {
    pid = Number(readFileSync(pidFile, 'utf8').trim());
  } catch {
    // none
  }
  if (Number.isInteger(pid) && pid > 0 && pidAlive(pid)) {
    fatal(`the qubes-bus stack is already running here (pid ${pid}); stop it with Ctrl-C in its terminal or 'kill ${pid}'`);
  }
}

function pidAlive(pid) {
  try {
    process.kill(pid, 0);
  } catch (err) {
    return err.code === 'EPERM';
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return true;
  }
}

const installedMarker = path.join(root, 'node_modules/.package-lock.json');
const lock = path.join(root, 'package-lock.json');
const needsNpmCi = !existsSync(installedMarker) || statSync(lock).mtimeMs > statSync(installedMarker).mtimeMs;

// --- Debian packages -----------------------------------------------------------------------
const packages = JSON.parse(readFileSync(path.join(root, 'libs/daemons/debian-packages.json'), 'utf8'));
const searchDirs = [...(process.env.PATH ?? '').split(path.delimiter), '/usr/sbin', '/sbin', '/usr/local/sbin'];
// A key that is an absolute path names a file (a header) rather than a program.
const has = (program) =>
  path.isAbsolute(program) ? existsSync(program) : searchDirs.some((dir) => {
    try {
      accessSync(path.join(dir, program), constants.X_OK);
      return dir !== '';
    } catch {
      return false;
    }
  });
// Before npm ci: it compiles @unraid/libvirt against libvirt's headers. Then nats-server always;
// libvirt, QEMU and tini for real VMs unless LIBVIRT_URI names a libvirtd elsewhere. The tests
// need all of them.
const required = [...(needsNpmCi ? ['make', 'g++', 'pkg-config', '/usr/include/libvirt/libvirt.h'] : []), 'nats-server'];
const wanted = [...required];
if (prepareOnly || !process.env.LIBVIRT_URI) wanted.push('libvirtd', 'virtlogd', 'virsh', 'virt-xml-validate', 'xmllint', 'tini', 'qemu-system-x86_64');
// The storage tests make xfs and btrfs filesystems (reflinks) on loop devices.
if (prepareOnly) wanted.push('mkfs.xfs', 'mkfs.btrfs');
const missing = wanted.filter((program) => !has(program));
if (missing.length > 0) {
  const debs = [...new Set(missing.map((program) => packages[program]))];
  const asRoot = process.getuid?.() === 0;
  const sudo = !asRoot && spawnSync('sudo', ['-n', 'true']).status === 0;
  if (has('apt-get') && (asRoot || sudo)) {
    say(`installing Debian packages: ${debs.join(' ')}...`);
    const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
    const run = (args) => spawnSync(asRoot ? args[0] : 'sudo', asRoot ? args.slice(1) : ['-n', ...args], { stdio: 'inherit', env });
    if (run(['apt-get', 'update', '-q']).status !== 0 || run(['apt-get', 'install', '-y', '-q', '--no-install-recommends', ...debs]).status !== 0) {
      fatal(`could not install ${debs.join(' ')}; install them with: sudo apt-get install -y ${debs.join(' ')}`);
    }
  } else if (missing.some((program) => required.includes(program))) {
    fatal(`missing ${missing.join(', ')}: install them with: sudo apt-get install -y ${debs.join(' ')}`);
  } else {
    say(`warning: missing ${missing.join(', ')}, so no VM can run; install them with: sudo apt-get install -y ${debs.join(' ')}`);
  }
}

// --- npm packages --------------------------------------------------------------------------
if (needsNpmCi) {
  say('installing npm packages (npm ci)...');
  const npm = spawnSync('npm', ['ci', '--no-audit', '--no-fund'], { cwd: root, stdio: 'inherit' });
  if (npm.status !== 0) fatal('npm ci failed; see the messages above');
}

// --- build ---------------------------------------------------------------------------------
try {
  execFileSync(process.execPath, [path.join(root, 'tools/build.mjs'), '--quiet'], { cwd: root, stdio: 'inherit' });
} catch {
  fatal('the build failed; see the messages above');
}

if (!prepareOnly) {
  const require = createRequire(import.meta.url);
  require(path.join(root, 'dist/tools/stack.js')).main(root);
}
