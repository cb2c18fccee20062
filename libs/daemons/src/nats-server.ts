import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, openSync, readFileSync, writeFileSync, closeSync } from 'node:fs';
import path from 'node:path';
import { requireBinary } from './binaries';
import { exited, terminate, waitFor } from './process';

export interface NatsServerOptions {
  /** Holds the config file, the ports file and the log. */
  workDir: string;
  /** JetStream store; kept across restarts. Default `<workDir>/jetstream`. */
  storeDir?: string;
  /** A fixed port; default: a free one chosen by the server (`-1`), kept across restarts. */
  port?: number;
  host?: string;
  /**
   * Largest message the server accepts. 8 MiB, so that an oversized request reaches the service
   * and gets a PAYLOAD_TOO_LARGE reply instead of the server cutting the connection.
   */
  maxPayload?: number;
  /** Write the server's log to `<workDir>/nats-server.log` (default) or pass it through. */
  log?: 'file' | 'inherit';
  /**
   * Run in a process group of its own, so that a Ctrl-C on the terminal reaches only its
   * parent, which then stops the server last, after the clients that drain into it.
   */
  ownProcessGroup?: boolean;
}

export interface NatsServer {
  readonly url: string;
  readonly port: number;
  readonly pid: number;
  readonly storeDir: string;
  /** Stops the server; its store stays. */
  stop(): Promise<void>;
  /** Stops and starts it again on the same port with the same store. */
  restart(): Promise<void>;
  /** Resolves when the server process exits for whatever reason. */
  readonly exited: Promise<void>;
}

export const DEFAULT_MAX_PAYLOAD = 8 * 1024 * 1024;

/** The local `nats-server` binary on a free port, with JetStream and a store of its own. */
export async function spawnNatsServer(options: NatsServerOptions): Promise<NatsServer> {
  const binary = requireBinary('nats-server', 'to run the bus');
  const host = options.host ?? '127.0.0.1';
  const storeDir = options.storeDir ?? path.join(options.workDir, 'jetstream');
  mkdirSync(options.workDir, { recursive: true });
  mkdirSync(storeDir, { recursive: true });

  let port = options.port ?? -1;
  let child: ChildProcess;
  let exitedPromise: Promise<void>;

  const start = async (): Promise<void> => {
    const config = path.join(options.workDir, 'nats-server.conf');
    // JSON is valid NATS config syntax, and quoting every value avoids its escaping rules.
    writeFileSync(
      config,
      JSON.stringify(
        {
          host,
          port,
          max_payload: options.maxPayload ?? DEFAULT_MAX_PAYLOAD,
          jetstream: { store_dir: storeDir },
        },
        null,
        2,
      ),
    );
    const logFd = options.log === 'inherit' ? 'inherit' : openSync(path.join(options.workDir, 'nats-server.log'), 'a');
    child = spawn(binary, ['-c', config, '--ports_file_dir', options.workDir], {
      stdio: ['ignore', logFd, logFd],
      detached: options.ownProcessGroup ?? false,
    });
    if (typeof logFd === 'number') closeSync(logFd);
    exitedPromise = exited(child);
    const pid = child.pid;
    if (pid === undefined) throw new Error(`could not start ${binary}`);
    const portsFile = path.join(options.workDir, `nats-server_${pid}.ports`);
    const url = await waitFor(
      `nats-server (pid ${pid}) to listen`,
      () => {
        if (child.exitCode !== null) {
          throw new Error(`nats-server exited with status ${child.exitCode}; see ${options.workDir}/nats-server.log`);
        }
        try {
          const ports = JSON.parse(readFileSync(portsFile, 'utf8')) as { nats?: string[] };
          return ports.nats?.[0];
        } catch {
          return undefined;
        }
      },
      { timeoutMs: 10_000 },
    );
    port = Number(new URL(url).port);
  };

  await start();
  const server: NatsServer = {
    get url() {
      return `nats://${host}:${port}`;
    },
    get port() {
      return port;
    },
    get pid() {
      return child.pid ?? -1;
    },
    storeDir,
    stop: () => terminate(child),
    restart: async () => {
      await terminate(child);
      await start();
    },
    get exited() {
      return exitedPromise;
    },
  };
  return server;
}
