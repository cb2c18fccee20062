import { existsSync } from 'node:fs';
import { request } from 'node:http';
import { createServer } from 'node:net';
import { canConnect, spawnNatsServer } from '@qubes-bus/daemons';
import { tmpDataDir } from './tmp-data-dir';

/** A NATS server with JetStream for one test file, on a port of its own. */
export interface TestNats {
  /** Connection URL, credentials included where the server needs them. */
  readonly url: string;
  /** `container` (testcontainers, image nats:2.9) or `local` (the nats-server binary). */
  readonly kind: 'container' | 'local';
  /** Stops the server and forgets its store. */
  stop(): Promise<void>;
  /** Stops the server and starts it again on the same port with the same JetStream store. */
  restart(): Promise<void>;
}

const IMAGE = 'nats:2.9';
const MAX_PAYLOAD = 8 * 1024 * 1024;

/**
 * Where a Docker engine is reachable, the testcontainers NATS module; elsewhere the local
 * `nats-server` binary. `QUBES_TEST_NATS=local|container` forces one. testcontainers is
 * imported only when used (its import alone costs ~220 ms).
 */
export async function startNats(): Promise<TestNats> {
  const forced = process.env['QUBES_TEST_NATS'];
  const useContainer = forced === 'container' || (forced !== 'local' && (await dockerEngineReachable()));
  return useContainer ? startContainer() : startLocal();
}

async function startLocal(): Promise<TestNats> {
  const dir = tmpDataDir('qubes-bus-nats-');
  const server = await spawnNatsServer({ workDir: dir.path, maxPayload: MAX_PAYLOAD });
  const killOnExit = (): void => {
    try {
      process.kill(server.pid, 'SIGKILL');
    } catch {
      // already gone
    }
  };
  process.on('exit', killOnExit);
  return {
    kind: 'local',
    url: server.url,
    restart: () => server.restart(),
    async stop() {
      process.removeListener('exit', killOnExit);
      await server.stop();
      dir.remove();
    },
  };
}

async function startContainer(): Promise<TestNats> {
  const { NatsContainer } = await import('@testcontainers/nats');
  // A fixed host port, so that clients find the server again after a restart.
  const hostPort = await freePort();
  const container = await new NatsContainer(IMAGE)
    .withJetStream()
    .withArg('--store_dir', '/data/jetstream')
    .withArg('--config', '/etc/nats/qubes-bus.conf')
    .withCopyContentToContainer([{ content: `max_payload: ${MAX_PAYLOAD}\n`, target: '/etc/nats/qubes-bus.conf' }])
    .withExposedPorts({ container: 4222, host: hostPort })
    .start();
  const { user, pass } = container.getConnectionOptions();
  const credentials = user === undefined ? '' : `${encodeURIComponent(user)}:${encodeURIComponent(pass ?? '')}@`;
  return {
    kind: 'container',
    url: `nats://${credentials}${container.getHost()}:${hostPort}`,
    async restart() {
      await container.restart();
    },
    async stop() {
      await container.stop();
    },
  };
}

async function dockerEngineReachable(): Promise<boolean> {
  const host = process.env['DOCKER_HOST'];
  if (host?.startsWith('tcp://')) {
    const url = new URL(host.replace(/^tcp:/, 'http:'));
    return canConnect({ host: url.hostname, port: Number(url.port || 2375) });
  }
  const socketPath = host?.startsWith('unix://') ? host.slice('unix://'.length) : '/var/run/docker.sock';
  if (!existsSync(socketPath)) return false;
  return new Promise((resolve) => {
    const req = request({ socketPath, path: '/_ping', timeout: 1_000 }, (res) => {
      res.resume();
      resolve(res.statusCode === 200);
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(false));
    req.end();
  });
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => (typeof address === 'object' && address !== null ? resolve(address.port) : reject(new Error('no port'))));
    });
  });
}
