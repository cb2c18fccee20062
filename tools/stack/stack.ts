import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, mkdirSync, openSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Svcm } from '@nats-io/services';
import { connectBus, type Bus } from '@qubes-bus/bus';
import { isQubesError } from '@qubes-bus/contracts';
import { pidAlive, spawnNatsServer, startLibvirtd, terminate, type Libvirtd, type NatsServer } from '@qubes-bus/daemons';
import { createLogger, type Logger } from '@qubes-bus/log';

/**
 * The embedded default (`npm start`): a nats-server with JetStream under ./var, a private
 * libvirtd unless LIBVIRT_URI names one, and every service in apps/, supervised. The bus URL
 * goes to var/nats.url for the tools; Ctrl-C or SIGTERM stops everything, in order.
 */
export async function main(root: string): Promise<void> {
  const varDir = path.resolve(process.env['QUBES_VAR_DIR'] ?? path.join(root, 'var'));
  mkdirSync(varDir, { recursive: true });
  const log = createLogger('stack');
  const pidFile = path.join(varDir, 'stack.pid');
  const holder = claimPidFile(pidFile);
  if (holder !== null) {
    process.stderr.write(`ERROR: the qubes-bus stack is already running here (pid ${holder}); stop it with Ctrl-C in its terminal or 'kill ${holder}'\n`);
    process.exit(1);
  }
  killLeftovers(varDir, log);
  const stack = new Stack(root, varDir, log);
  let stopping = false;
  const stop = (reason: string, exitCode: number): void => {
    if (stopping) {
      // A second Ctrl-C: do not wait for an orderly stop any longer.
      log.warn({ reason }, 'stopping at once');
      stack.killAll();
      rmSync(pidFile, { force: true });
      process.exit(1);
    }
    stopping = true;
    log.info({ reason }, 'stopping the stack');
    void stack.stop().finally(() => {
      rmSync(pidFile, { force: true });
      log.info('stopped');
      process.exit(exitCode);
    });
  };
  process.on('SIGINT', () => stop('SIGINT', 0));
  process.on('SIGTERM', () => stop('SIGTERM', 0));
  process.on('SIGHUP', () => stop('SIGHUP', 0)); // its terminal closed
  process.on('exit', () => {
    stack.killAll();
    rmSync(pidFile, { force: true });
  });
  stack.onFatal = (reason) => stop(reason, 1);
  try {
    await stack.start();
  } catch (err) {
    process.stderr.write(`ERROR: ${(err as Error).message}\n`);
    log.debug({ err }, 'the stack could not start');
    stop('start failure', 1);
  }
}

/** Takes the pid file, or returns the pid of the live stack that holds it. */
function claimPidFile(pidFile: string): number | null {
  for (;;) {
    try {
      const fd = openSync(pidFile, 'wx');
      writeFileSync(fd, `${process.pid}\n`);
      closeSync(fd);
      return null;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    const pid = Number(readFileSync(pidFile, 'utf8').trim());
    if (Number.isInteger(pid) && pid > 0 && pid !== process.pid && pidAlive(pid)) return pid;
    rmSync(pidFile, { force: true }); // left by a stack that died
  }
}

/**
 * The processes of a stack are listed in var/stack.procs. A stack killed outright (SIGKILL, a
 * crash) leaves them running, holding the bus store; the next start stops them first. A pid is
 * only signalled if its command line still names this var dir or this build, in case the pid
 * has since been reused.
 */
function procsFile(varDir: string): string {
  return path.join(varDir, 'stack.procs');
}

function recordProcs(varDir: string, entries: Array<{ pid: number; marker: string }>): void {
  writeFileSync(procsFile(varDir), entries.map((e) => `${e.pid} ${e.marker}`).join('\n') + '\n');
}

function killLeftovers(varDir: string, log: Logger): void {
  let lines: string[];
  try {
    lines = readFileSync(procsFile(varDir), 'utf8').split('\n').filter(Boolean);
  } catch {
    return;
  }
  for (const line of lines) {
    const [pidText, ...rest] = line.split(' ');
    const pid = Number(pidText);
    const marker = rest.join(' ');
    let cmdline = '';
    try {
      cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8').replaceAll('\0', ' ');
    } catch {
      continue; // gone
    }
    if (marker === '' || !cmdline.includes(marker)) continue;
    log.warn({ pid, cmdline }, 'stopping a process left over by a stack that died');
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // gone meanwhile
    }
  }
  rmSync(procsFile(varDir), { force: true });
}

interface ServiceApp {
  name: string;
  main: string;
}

/** Every app tagged `type:service`, as built into dist/. */
function serviceApps(root: string): ServiceApp[] {
  return readdirSync(path.join(root, 'apps'))
    .filter((app) => {
      try {
        const pkg = JSON.parse(readFileSync(path.join(root, 'apps', app, 'package.json'), 'utf8')) as { nx?: { tags?: string[] } };
        return pkg.nx?.tags?.includes('type:service') === true;
      } catch {
        return false;
      }
    })
    .map((app) => ({ name: app, main: path.join(root, 'dist/apps', app, 'main.js') }));
}

const RESTART_DELAY_MS = 1_000;
const MAX_QUICK_FAILURES = 5;
const READY_TIMEOUT_MS = 60_000;

class Stack {
  private nats: NatsServer | undefined;
  private libvirtd: Libvirtd | undefined;
  private readonly children = new Map<string, ChildProcess>();
  private stopping = false;
  /** Called when the stack cannot go on (a service that dies at every start). */
  onFatal: (reason: string) => void = () => undefined;

  constructor(
    private readonly root: string,
    private readonly varDir: string,
    private readonly log: Logger,
  ) {}

  async start(): Promise<void> {
    const natsDir = path.join(this.varDir, 'nats');
    this.nats = await spawnNatsServer({ workDir: natsDir, storeDir: path.join(natsDir, 'jetstream'), ownProcessGroup: true });
    const urlFile = path.join(this.varDir, 'nats.url');
    writeFileSync(`${urlFile}.tmp`, `${this.nats.url}\n`);
    renameSync(`${urlFile}.tmp`, urlFile);
    this.log.info({ url: this.nats.url, store: natsDir }, 'nats-server started');
    this.recordProcs();

    let libvirtUri = process.env['LIBVIRT_URI'];
    if (libvirtUri === undefined) {
      try {
        this.libvirtd = await startLibvirtd();
        libvirtUri = this.libvirtd.uri;
        this.log.info({ uri: libvirtUri, driver: this.libvirtd.driver }, 'private libvirtd started');
      } catch (err) {
        if (!isQubesError(err, 'DEPENDENCY_MISSING')) throw err;
        this.log.warn({ reason: err.message }, 'no libvirtd: VMs cannot run');
      }
    }

    const dataDir = path.join(this.varDir, 'lib/qubes');
    mkdirSync(dataDir, { recursive: true });
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      QUBES_NATS_URL: this.nats.url,
      QUBES_DATA_DIR: dataDir,
      // where services offer local sockets (an import's data from a tool on this host)
      QUBES_RUN_DIR: path.join(this.varDir, 'run'),
      ...(libvirtUri === undefined ? {} : { LIBVIRT_URI: libvirtUri }),
    };
    const apps = serviceApps(this.root);
    for (const app of apps) this.supervise(app, env);
    await this.waitUntilServing(apps.map((a) => a.name));
    this.log.info(
      { bus: this.nats.url, dataDir, libvirt: libvirtUri ?? null, services: apps.map((a) => a.name) },
      "qubes-bus is running; try 'npx qvm-ls'; Ctrl-C stops it",
    );
  }

  /** Runs one service, restarting it when it dies, unless it keeps dying at once. */
  private supervise(app: ServiceApp, env: NodeJS.ProcessEnv, quickFailures = 0): void {
    const started = Date.now();
    // Own process group: a Ctrl-C reaches the stack alone, which stops the services before
    // the bus they drain into.
    const child = spawn(process.execPath, ['--enable-source-maps', app.main], { env, stdio: 'inherit', detached: true });
    this.children.set(app.name, child);
    this.recordProcs();
    child.once('exit', (code, signal) => {
      this.children.delete(app.name);
      if (this.stopping) return;
      const quick = Date.now() - started < 10_000 ? quickFailures + 1 : 0;
      if (quick >= MAX_QUICK_FAILURES) {
        this.log.error({ service: app.name, code, signal }, 'service keeps failing at start; stopping the stack');
        this.onFatal(`${app.name} keeps failing`);
        return;
      }
      this.log.warn({ service: app.name, code, signal }, `service exited; restarting it in ${RESTART_DELAY_MS} ms`);
      setTimeout(() => !this.stopping && this.supervise(app, env, quick), RESTART_DELAY_MS);
    });
  }

  /** Waits until every service answers `$SRV.PING`. */
  private async waitUntilServing(names: string[]): Promise<void> {
    const bus: Bus = await connectBus({ url: this.nats!.url, name: 'stack', log: this.log, mode: 'tool' });
    try {
      const deadline = Date.now() + READY_TIMEOUT_MS;
      const seen = new Set<string>();
      while (seen.size < names.length) {
        if (Date.now() > deadline) {
          throw new Error(`services did not come up within ${READY_TIMEOUT_MS / 1000} s: ${names.filter((n) => !seen.has(n)).join(', ')}`);
        }
        try {
          for await (const pong of await new Svcm(bus.nc).client({ strategy: 'timer', maxWait: 250 }).ping()) seen.add(pong.name);
        } catch {
          // no service has registered yet
        }
        if (seen.size < names.length) await sleep(100);
      }
    } finally {
      await bus.close();
    }
  }

  private recordProcs(): void {
    const entries = [...this.children.values()].flatMap((child) =>
      child.pid === undefined ? [] : [{ pid: child.pid, marker: path.join(this.root, 'dist') }],
    );
    if (this.nats !== undefined) entries.push({ pid: this.nats.pid, marker: this.varDir });
    recordProcs(this.varDir, entries);
  }

  async stop(): Promise<void> {
    this.stopping = true;
    await Promise.all([...this.children.values()].map((child) => terminate(child, 'SIGTERM', 5_000)));
    await this.libvirtd?.stop();
    await this.nats?.stop();
    rmSync(path.join(this.varDir, 'nats.url'), { force: true });
    rmSync(procsFile(this.varDir), { force: true });
  }

  /** Last resort on an abrupt exit: no child outlives the stack. */
  killAll(): void {
    for (const child of this.children.values()) child.kill('SIGKILL');
    if (this.nats !== undefined) {
      try {
        process.kill(this.nats.pid, 'SIGKILL');
      } catch {
        // gone already
      }
    }
  }
}
