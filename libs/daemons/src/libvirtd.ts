import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, chownSync, closeSync, lstatSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { QubesError } from '@qubes-bus/contracts';
import { findBinary, requireBinary } from './binaries';
import { withFileLock } from './file-lock';
import { canConnect, pidAlive, terminate, terminatePid, waitFor } from './process';

const execFileAsync = promisify(execFile);

/**
 * `qemu`: real QEMU domains (type `qemu`, TCG). Where the system libvirtd runs (a systemd host
 * that installed libvirt-daemon-system), that is the one to use: a second QEMU-driver daemon
 * could not take its state paths under /run/libvirt. Otherwise one private daemon serves the
 * machine, root only: every user takes a lease on it and the last one to let go stops it.
 * `test`: libvirt's test driver, in a private daemon per caller; fast, no guests, no hot-plug.
 */
export const LibvirtDriver = { Qemu: 'qemu', Test: 'test' } as const;
export type LibvirtDriver = (typeof LibvirtDriver)[keyof typeof LibvirtDriver];

export interface Libvirtd {
  readonly uri: string;
  readonly driver: LibvirtDriver;
  /** Lets go of the daemon (stops it if this was its last user and we started it). */
  stop(): Promise<void>;
}

export interface LibvirtdOptions {
  /** Default: `qemu` where QEMU can run here (see defaultLibvirtDriver), else `test`. */
  driver?: LibvirtDriver;
  /** `test` driver only: where its socket and log go (default: a new temporary directory). */
  dir?: string;
  /** `qemu` driver only: the directory of the shared private daemon. */
  sharedDir?: string;
}

const SYSTEM_SOCKET = '/run/libvirt/libvirt-sock';
const SYSTEM_URI = 'qemu:///system';

function isRoot(): boolean {
  return process.getuid?.() === 0;
}

/** `qemu` where real domains can run: a system libvirtd answers, or we are root with QEMU installed. */
export async function defaultLibvirtDriver(): Promise<LibvirtDriver> {
  if (await canConnect(SYSTEM_SOCKET)) return LibvirtDriver.Qemu;
  return isRoot() && findBinary('qemu-system-x86_64') !== null ? LibvirtDriver.Qemu : LibvirtDriver.Test;
}

export async function startLibvirtd(options: LibvirtdOptions = {}): Promise<Libvirtd> {
  const driver = options.driver ?? (await defaultLibvirtDriver());
  if (driver === LibvirtDriver.Test) {
    return options.dir !== undefined
      ? startTestDriverDaemon(options.dir, false)
      : startTestDriverDaemon(mkdtempSync(path.join(tmpdir(), 'qubes-bus-libvirt-test-')), true);
  }
  if (await canConnect(SYSTEM_SOCKET)) {
    return { uri: SYSTEM_URI, driver, stop: async () => undefined };
  }
  if (!isRoot()) {
    throw new QubesError(
      'DEPENDENCY_MISSING',
      'real QEMU domains need the system libvirtd (sudo systemctl start libvirtd, and membership of the libvirt group) or root',
      { details: { program: 'libvirtd', package: 'libvirt-daemon-system' } },
    );
  }
  return acquireSharedQemuDaemon(options.sharedDir ?? process.env['QUBES_LIBVIRTD_DIR'] ?? '/run/qubes-bus/libvirtd');
}

function daemonConfig(socketDir: string): string {
  return [
    `unix_sock_dir = ${JSON.stringify(socketDir)}`,
    'auth_unix_rw = "none"',
    'auth_unix_ro = "none"',
    'unix_sock_rw_perms = "0770"',
    // errors only: libvirtd complains at length about the missing dbus, dnsmasq and /dev/kvm
    'log_outputs = "3:stderr"',
    '',
  ].join('\n');
}

async function virshWorks(uri: string): Promise<boolean> {
  try {
    await execFileAsync(requireBinary('virsh', 'to talk to libvirtd'), ['-c', uri, 'uri'], { timeout: 60_000 });
    return true;
  } catch {
    return false;
  }
}

// ---------------------------------------------------------------------------------------------
// The test driver: a private daemon. Its `test:///default` state lives only while a client is
// connected, so a keeper connection (an idle interactive virsh) holds it for the daemon's life.

async function startTestDriverDaemon(dir: string, removeDir: boolean): Promise<Libvirtd> {
  const libvirtd = requireBinary('libvirtd', 'to run a private libvirt daemon');
  const virsh = requireBinary('virsh', 'to talk to libvirtd');
  mkdirSync(path.join(dir, 'no-drivers'), { recursive: true });
  const conf = path.join(dir, 'libvirtd.conf');
  writeFileSync(conf, daemonConfig(dir));
  const logFd = openSync(path.join(dir, 'libvirtd.log'), 'a');
  const daemon = spawn(libvirtd, ['-f', conf, '-p', path.join(dir, 'libvirtd.pid')], {
    stdio: ['ignore', logFd, logFd],
    // No driver modules: only the built-in test driver answers.
    env: { ...process.env, LIBVIRT_DRIVER_DIR: path.join(dir, 'no-drivers') },
  });
  closeSync(logFd);
  const socket = path.join(dir, 'libvirt-sock');
  const uri = `test+unix:///default?socket=${socket}`;
  let keeper: ChildProcess | undefined;
  const killAll = (): void => {
    keeper?.kill('SIGKILL');
    daemon.kill('SIGKILL');
  };
  process.once('exit', killAll);
  try {
    await waitFor('the test-driver libvirtd socket', async () => {
      if (daemon.exitCode !== null) throw new Error(`libvirtd exited (${daemon.exitCode}); see ${dir}/libvirtd.log`);
      return (await canConnect(socket)) ? true : undefined;
    });
    keeper = spawn(virsh, ['-c', uri], { stdio: ['pipe', 'ignore', 'ignore'] });
    await waitFor('the libvirt test driver', async () => ((await virshWorks(uri)) ? true : undefined));
  } catch (err) {
    killAll();
    throw err;
  }
  return {
    uri,
    driver: LibvirtDriver.Test,
    async stop() {
      process.removeListener('exit', killAll);
      if (keeper !== undefined) {
        keeper.stdin?.end();
        await terminate(keeper, 'SIGTERM', 1_000);
      }
      await terminate(daemon);
      if (removeDir) rmSync(dir, { recursive: true, force: true });
    },
  };
}

// ---------------------------------------------------------------------------------------------
// The QEMU driver: one detached daemon per machine under `tini -s` (it reaps QEMU processes at
// once; without it each destroy takes ~1.5 s), with virtlogd, shared through lease files.

const VIRTLOGD_SOCKET = '/run/libvirt/virtlogd-sock';

async function acquireSharedQemuDaemon(sharedDir: string): Promise<Libvirtd> {
  const socket = path.join(sharedDir, 'libvirt-sock');
  const uri = `qemu:///system?socket=${socket}`;
  ensurePrivateDir(sharedDir);
  const leases = path.join(sharedDir, 'leases');
  mkdirSync(leases, { recursive: true, mode: 0o700 });
  const lease = path.join(leases, `${process.pid}.${Math.random().toString(36).slice(2)}`);
  const lock = path.join(sharedDir, 'lock');

  await withFileLock(lock, async () => {
    pruneDeadLeases(leases);
    const running = readPid(path.join(sharedDir, 'tini.pid'));
    if (running === null || !pidAlive(running) || !(await canConnect(socket))) {
      await launchQemuDaemon(sharedDir, uri);
    }
    writeFileSync(lease, String(process.pid));
  });
  const dropLease = (): void => rmSync(lease, { force: true });
  process.once('exit', dropLease);

  return {
    uri,
    driver: LibvirtDriver.Qemu,
    async stop() {
      process.removeListener('exit', dropLease);
      await withFileLock(lock, async () => {
        dropLease();
        pruneDeadLeases(leases);
        if (readdirSync(leases).length > 0) return;
        const tini = readPid(path.join(sharedDir, 'tini.pid'));
        if (tini !== null) await terminatePid(tini, 'SIGTERM', 10_000);
        const virtlogd = readPid(path.join(sharedDir, 'virtlogd.pid'));
        if (virtlogd !== null) await terminatePid(virtlogd);
        rmSync(path.join(sharedDir, 'tini.pid'), { force: true });
        rmSync(path.join(sharedDir, 'virtlogd.pid'), { force: true });
      });
    },
  };
}

async function launchQemuDaemon(sharedDir: string, uri: string): Promise<void> {
  const libvirtd = requireBinary('libvirtd', 'to run QEMU domains');
  const tini = requireBinary('tini', 'to reap QEMU processes under libvirtd');
  requireBinary('qemu-system-x86_64', 'to run QEMU domains');
  requireBinary('virsh', 'to talk to libvirtd');

  if (!(await canConnect(VIRTLOGD_SOCKET))) {
    const virtlogd = requireBinary('virtlogd', 'to collect QEMU logs');
    const conf = path.join(sharedDir, 'virtlogd.conf');
    writeFileSync(conf, 'log_outputs = "3:stderr"\n');
    const pid = spawnDetached(virtlogd, ['-f', conf], path.join(sharedDir, 'virtlogd.log'));
    writeFileSync(path.join(sharedDir, 'virtlogd.pid'), String(pid));
    await waitFor('virtlogd', async () => ((await canConnect(VIRTLOGD_SOCKET)) ? true : undefined));
  }

  openKvmToItsGroup();
  const conf = path.join(sharedDir, 'libvirtd.conf');
  writeFileSync(conf, daemonConfig(sharedDir));
  const pid = spawnDetached(
    tini,
    ['-s', '--', libvirtd, '-f', conf, '-p', path.join(sharedDir, 'libvirtd.pid')],
    path.join(sharedDir, 'libvirtd.log'),
  );
  writeFileSync(path.join(sharedDir, 'tini.pid'), String(pid));
  // The first connection after installation probes QEMU's capabilities (~7 s here).
  await waitFor(
    `libvirtd (QEMU driver; log in ${sharedDir}/libvirtd.log)`,
    async () => {
      if (!pidAlive(pid)) throw new Error(`libvirtd exited; see ${sharedDir}/libvirtd.log`);
      return (await canConnect(path.join(sharedDir, 'libvirt-sock'))) && (await virshWorks(uri)) ? true : undefined;
    },
    { timeoutMs: 90_000, intervalMs: 100 },
  );
}

/**
 * A host without udev (a container, a bare VM image) leaves /dev/kvm as the kernel made it: root
 * only. libvirt's QEMU probe still finds KVM, but QEMU runs as an unprivileged user (libvirt-qemu,
 * in group kvm) who cannot open it, and libvirt then throws its capability cache away and probes
 * QEMU again (~6 s) on every call that needs it, defining a domain included. Give the device the
 * group and mode udev's default rule gives it, as a Debian host with udev has it. Nothing changes
 * where udev (or an administrator) already set it, or where there is no kvm group.
 */
export function openKvmToItsGroup(device = '/dev/kvm', groupFile = '/etc/group'): boolean {
  let stat;
  try {
    stat = statSync(device);
  } catch {
    return false;
  }
  if (!stat.isCharacterDevice() || stat.uid !== 0 || (stat.mode & 0o077) !== 0) return false;
  let gid: number | undefined;
  try {
    const line = readFileSync(groupFile, 'utf8').split('\n').find((entry) => entry.startsWith('kvm:'));
    gid = line === undefined ? undefined : Number(line.split(':')[2]);
  } catch {
    return false;
  }
  if (gid === undefined || !Number.isInteger(gid)) return false;
  chownSync(device, 0, gid);
  chmodSync(device, 0o660);
  return true;
}

function spawnDetached(binary: string, args: string[], logPath: string): number {
  const logFd = openSync(logPath, 'a');
  const child = spawn(binary, args, { detached: true, stdio: ['ignore', logFd, logFd] });
  closeSync(logFd);
  child.unref();
  if (child.pid === undefined) throw new Error(`could not start ${binary}`);
  return child.pid;
}

function readPid(file: string): number | null {
  try {
    const pid = Number(readFileSync(file, 'utf8').trim());
    return Number.isInteger(pid) && pid > 0 ? pid : null;
  } catch {
    return null;
  }
}

function pruneDeadLeases(leases: string): void {
  for (const name of readdirSync(leases)) {
    const pid = Number(name.split('.')[0]);
    if (!pidAlive(pid)) rmSync(path.join(leases, name), { force: true });
  }
}

/**
 * The shared daemon's directory holds its config, pid files and socket, and root writes there:
 * it must be ours alone, not a directory (or a symlink) someone else prepared.
 */
function ensurePrivateDir(dir: string): void {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const stat = lstatSync(dir);
  const ours = stat.isDirectory() && stat.uid === process.getuid?.() && (stat.mode & 0o077) === 0;
  if (!ours) {
    throw new Error(`${dir} must be a directory owned by this user with mode 0700; remove it or set QUBES_LIBVIRTD_DIR`);
  }
}
