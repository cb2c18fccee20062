import { execFile, spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { connect } from '@nats-io/transport-node';
import { AdminVmList, type Endpoint } from '@qubes-bus/contracts';

/**
 * The services as they run for real: their built bundles (dist/apps/<app>/main.js) as child
 * processes on a real nats-server. A test of one service starts the others this way, never
 * importing their code (apps never import apps).
 */
export const REPO_ROOT = path.resolve(__dirname, '../../..');
const run = promisify(execFile);

/** Builds the bundles (each written whole, so parallel test files may build at once). */
export async function buildBundles(): Promise<void> {
  await run(process.execPath, [path.join(REPO_ROOT, 'tools/build.mjs'), '--quiet'], { cwd: REPO_ROOT });
}

/** A process the test started, with what it printed so far. */
export interface Started {
  readonly child: ChildProcess;
  output(): string;
  /** SIGTERM (or `signal`), then SIGKILL after 5 s; resolves with the exit code. */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

/** Keeps what a child process prints, and stops it: SIGTERM, then SIGKILL after 5 s. */
export function trackProcess(child: ChildProcess): Started {
  let output = '';
  child.stdout?.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr?.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const exit = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return {
    child,
    output: () => output,
    async stop(signal = 'SIGTERM') {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill(signal);
        const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
        const code = await exit;
        clearTimeout(timer);
        return code;
      }
      return exit;
    },
  };
}

/**
 * The vm-registry from its bundle, on `dataDir`, with `env` besides (LIBVIRT_URI and
 * QUBES_DOMAIN_TYPE for real domains); resolves once admin.vm.List answers.
 */
export async function startRegistry(natsUrl: string, dataDir: string, env: NodeJS.ProcessEnv = {}): Promise<Started> {
  const child = spawn(process.execPath, [path.join(REPO_ROOT, 'dist/apps/vm-registry/main.js')], {
    cwd: REPO_ROOT,
    env: { ...process.env, QUBES_NATS_URL: natsUrl, QUBES_DATA_DIR: dataDir, LOG_FORMAT: 'json', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const registry = trackProcess(child);
  try {
    await untilRegistryAnswers(natsUrl, child);
  } catch (err) {
    await registry.stop('SIGKILL');
    throw new Error(`${(err as Error).message}; it printed:\n${registry.output()}`);
  }
  return registry;
}

async function untilRegistryAnswers(natsUrl: string, child: ChildProcess): Promise<void> {
  await untilAnswers(natsUrl, child, 'the vm-registry', { endpoint: AdminVmList, dest: 'dom0' });
}

/**
 * Calls `endpoint` (with an empty request) until something answers it, even with an error;
 * 20 s at most. Plain NATS: libs/bus is tested with this library.
 */
export async function untilAnswers(natsUrl: string, child: ChildProcess, what: string, probe: { endpoint: Endpoint; dest: string }): Promise<void> {
  const nc = await connect({ servers: natsUrl, name: 'test-probe' });
  try {
    const deadline = Date.now() + 20_000;
    const subject = probe.endpoint.subject(probe.dest);
    for (;;) {
      if (child.exitCode !== null) throw new Error(`${what} exited with status ${child.exitCode}`);
      try {
        await nc.request(subject, new TextEncoder().encode('{}'), { timeout: 2_000 });
        return;
      } catch {
        // no responders yet, or no answer in time
        if (Date.now() > deadline) throw new Error(`${what} did not answer ${probe.endpoint.method} within 20 s`);
        await sleep(50);
      }
    }
  } finally {
    await nc.close();
  }
}

/** A service from its bundle (`dist/apps/<app>/main.js`), on this bus, with `env` besides; resolves once `ready` answers. */
export async function startService(app: string, natsUrl: string, env: NodeJS.ProcessEnv, ready: { endpoint: Endpoint; dest: string }): Promise<Started> {
  const child = spawn(process.execPath, [path.join(REPO_ROOT, `dist/apps/${app}/main.js`)], {
    cwd: REPO_ROOT,
    env: { ...process.env, QUBES_NATS_URL: natsUrl, LOG_FORMAT: 'json', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const service = trackProcess(child);
  try {
    await untilAnswers(natsUrl, child, app, ready);
  } catch (err) {
    await service.stop('SIGKILL');
    throw new Error(`${(err as Error).message}; it printed:\n${service.output()}`);
  }
  return service;
}

