import { connect, type NatsConnection, type NodeConnectionOptions } from '@nats-io/transport-node';
import { QubesError } from '@qubes-bus/contracts';
import type { Logger } from '@qubes-bus/log';

export const DEFAULT_NATS_URL = 'nats://127.0.0.1:4222';

export interface ConnectOptions {
  /** `nats://[user:pass@]host:port`; several may be given, comma-separated (a cluster). */
  url: string;
  /** Client name shown by the server (`nats server report connections`). */
  name: string;
  log: Logger;
  /**
   * `service`: wait for the server at start and reconnect forever, with jitter, so that a
   * restarted server never needs the services restarted. `tool`: one quick attempt, so a
   * command-line tool fails at once with BUS_UNREACHABLE when nothing runs.
   */
  mode: 'service' | 'tool';
  /** `tool` mode: how long the single connection attempt may take. */
  connectTimeoutMs?: number;
}

/** Splits credentials out of the URL, since the NATS client takes them as options. */
export function serverOptions(url: string): Pick<NodeConnectionOptions, 'servers' | 'user' | 'pass'> {
  const servers: string[] = [];
  let user: string | undefined;
  let pass: string | undefined;
  for (const raw of url.split(',').map((s) => s.trim()).filter(Boolean)) {
    let parsed: URL;
    try {
      parsed = new URL(raw.includes('://') ? raw : `nats://${raw}`);
    } catch {
      throw new QubesError('BUS_UNREACHABLE', `'${raw}' is not a NATS URL (expected nats://host:port)`);
    }
    if (parsed.username !== '') {
      user = decodeURIComponent(parsed.username);
      pass = decodeURIComponent(parsed.password);
    }
    servers.push(`${parsed.protocol}//${parsed.host}`);
  }
  if (servers.length === 0) throw new QubesError('BUS_UNREACHABLE', 'no NATS URL given');
  return { servers, ...(user === undefined ? {} : { user, pass }) };
}

/** The URL as it may be shown or logged: without its password. */
export function redactUrl(url: string): string {
  return url.replace(/\/\/([^:@/]+):[^@/]*@/g, '//$1:***@');
}

/**
 * Every request would otherwise build an Error up front to keep the caller's async stack for a
 * possible timeout: a fifth of the CPU of a busy client. Our failures are QubesErrors naming
 * the endpoint and service, which say more than that stack.
 */
export const CLIENT_TUNING = { noAsyncTraces: true } as const satisfies NodeConnectionOptions;

export async function connectNats(options: ConnectOptions): Promise<NatsConnection> {
  const base = serverOptions(options.url);
  const tuning: NodeConnectionOptions =
    options.mode === 'service'
      ? {
          waitOnFirstConnect: true,
          maxReconnectAttempts: -1,
          reconnectTimeWait: 250,
          reconnectJitter: 250,
          pingInterval: 10_000,
          maxPingOut: 3,
        }
      : { reconnect: false, timeout: options.connectTimeoutMs ?? 1_500 };
  let nc: NatsConnection;
  try {
    nc = await connect({ ...base, ...tuning, ...CLIENT_TUNING, name: options.name });
  } catch (err) {
    const reason = err instanceof Error ? err.message : String(err);
    throw new QubesError('BUS_UNREACHABLE', `cannot reach the bus at ${redactUrl(options.url)}: ${reason}`, {
      cause: err,
      details: { url: redactUrl(options.url) },
    });
  }
  void logStatus(nc, options.log, options.mode);
  return nc;
}

async function logStatus(nc: NatsConnection, log: Logger, mode: ConnectOptions['mode']): Promise<void> {
  for await (const status of nc.status()) {
    switch (status.type) {
      case 'disconnect':
        // A tool does not reconnect: its caller reports the failure that follows.
        if (mode === 'service') log.warn({ server: status.server }, 'disconnected from the bus; reconnecting');
        else log.debug({ server: status.server }, 'disconnected from the bus');
        break;
      case 'reconnect':
        log.info({ server: status.server }, 'reconnected to the bus');
        break;
      case 'error':
        log.warn({ err: status.error }, 'bus connection error');
        break;
      default:
        log.debug({ status: status.type }, 'bus status');
    }
  }
}
