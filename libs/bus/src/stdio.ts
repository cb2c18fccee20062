import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import type { Readable, Writable } from 'node:stream';
import {
  isErrorCode,
  QubesError,
  subjectsOverlap,
  type Endpoint,
  type ErrorBody,
  type ReplyOf,
  type RequestInputOf,
} from '@qubes-bus/contracts';
import type { Logger } from '@qubes-bus/log';
import { handleRequest, type Handler, type Incoming, type Outcome, type RequestOptions, type Requester, type Router } from './handle';
import { DEFAULT_REQUEST_TIMEOUT_MS } from './bus';
import { encodeJson } from './wire';

/**
 * The same endpoints over a pipe instead of NATS, for the tools' `--offline` mode (installation,
 * recovery: no bus): a tool starts the service as its child and speaks JSON lines to it.
 *
 *   tool → service   {"id": 1, "subject": "qubes.api.dom0.admin.vm.List", "body": {...}}
 *   service → tool   {"ready": true} first, or {"fatal": {code, message}} and exit
 *                    {"id": 1, "ok": true, "reply": ...} | {"id": 1, "ok": false, "error": {...}}
 */

/** Handlers registered without a bus, answered by subject. */
export class LocalRouter implements Router {
  private readonly routes: Array<{ endpoint: Endpoint; handler: Handler<Endpoint> }> = [];

  serve<E extends Endpoint>(endpoint: E, handler: Handler<E>): void {
    this.routes.push({ endpoint, handler: handler as unknown as Handler<Endpoint> });
  }

  dispatch(incoming: Incoming, log: Logger, onward: Requester): Promise<Outcome> {
    const route = this.routes.find((r) => subjectsOverlap(r.endpoint.pattern, incoming.subject));
    if (route === undefined) {
      return Promise.resolve({
        ok: false,
        reqId: incoming.reqId ?? '',
        error: new QubesError('SERVICE_UNAVAILABLE', `offline, nothing answers ${incoming.subject}`),
      });
    }
    return handleRequest(route.endpoint, route.handler, incoming, log, onward);
  }
}

/** Onward calls from an offline service have nowhere to go. */
const NO_BUS: Requester = {
  request(endpoint) {
    return Promise.reject(new QubesError('SERVICE_UNAVAILABLE', `offline: ${endpoint.service} cannot be reached without the bus`));
  },
};

/** Answers requests read from `input`, one line each, in order; resolves when input ends. */
export async function serveStdio(router: LocalRouter, input: Readable, output: Writable, log: Logger): Promise<void> {
  const write = (message: unknown): void => {
    output.write(`${JSON.stringify(message)}\n`);
  };
  write({ ready: true });
  for await (const line of createInterface({ input, crlfDelay: Infinity })) {
    if (line.trim() === '') continue;
    let id: unknown = null;
    try {
      const untrusted = JSON.parse(line) as { id?: unknown; subject?: unknown; reqId?: unknown; body?: unknown };
      id = untrusted.id ?? null;
      if (typeof untrusted.subject !== 'string') throw new Error('no subject');
      const outcome = await router.dispatch(
        { subject: untrusted.subject, data: encodeJson(untrusted.body ?? {}), reqId: typeof untrusted.reqId === 'string' ? untrusted.reqId : undefined },
        log,
        NO_BUS,
      );
      if (outcome.ok) write({ id, ok: true, reply: JSON.parse(new TextDecoder().decode(outcome.data)) as unknown });
      else write({ id, ok: false, error: outcome.error.toBody() });
    } catch (err) {
      write({ id, ok: false, error: new QubesError('BAD_REQUEST', `not a request line: ${(err as Error).message}`).toBody() });
    }
  }
}

/** Reports a failure to start before `ready`, so the tool can print it as its own error. */
export function reportFatal(output: Writable, err: QubesError): void {
  output.write(`${JSON.stringify({ fatal: err.toBody() })}\n`);
}

interface Pending {
  endpoint: Endpoint;
  resolve: (reply: unknown) => void;
  reject: (err: unknown) => void;
  timer: NodeJS.Timeout;
}

/** Calls endpoints of a service it runs as a child process (see serveStdio). */
export class StdioRequester implements Requester {
  private readonly child: ChildProcess;
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  private readonly ready: Promise<void>;
  private stderr = '';

  constructor(command: string, args: readonly string[], env: NodeJS.ProcessEnv = process.env) {
    this.child = spawn(command, args, { stdio: ['pipe', 'pipe', 'pipe'], env });
    this.child.stderr!.on('data', (chunk: Buffer) => {
      this.stderr = (this.stderr + chunk.toString()).slice(-4096);
    });
    this.ready = new Promise((resolve, reject) => {
      const lines = createInterface({ input: this.child.stdout!, crlfDelay: Infinity });
      lines.on('line', (line) => {
        let message: { ready?: boolean; fatal?: ErrorBody; id?: number; ok?: boolean; reply?: unknown; error?: ErrorBody };
        try {
          message = JSON.parse(line) as typeof message;
        } catch {
          return; // not protocol: a stray line from the child
        }
        if (message.ready === true) resolve();
        else if (message.fatal !== undefined) reject(rebuild(message.fatal));
        else if (typeof message.id === 'number') this.settle(message.id, message);
      });
      this.child.once('exit', (code) => {
        const failure = new QubesError('SERVICE_UNAVAILABLE', `the offline service exited (status ${code})${this.stderr ? `: ${lastLine(this.stderr)}` : ''}`);
        reject(failure);
        for (const [id, p] of this.pending) {
          clearTimeout(p.timer);
          this.pending.delete(id);
          p.reject(failure);
        }
      });
      this.child.once('error', reject);
    });
  }

  async request<E extends Endpoint>(endpoint: E, body: RequestInputOf<E>, options: RequestOptions = {}): Promise<ReplyOf<E>> {
    await this.ready;
    const id = this.nextId++;
    const subject = endpoint.subject(options.dest ?? 'dom0');
    return new Promise<ReplyOf<E>>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new QubesError('TIMEOUT', `the offline ${endpoint.service} did not answer ${endpoint.method} in time`));
      }, options.timeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS);
      this.pending.set(id, { endpoint, resolve: resolve as (reply: unknown) => void, reject, timer });
      this.child.stdin!.write(`${JSON.stringify({ id, subject, reqId: options.reqId, body })}\n`);
    });
  }

  private settle(id: number, message: { ok?: boolean; reply?: unknown; error?: ErrorBody }): void {
    const p = this.pending.get(id);
    if (p === undefined) return;
    this.pending.delete(id);
    clearTimeout(p.timer);
    if (!message.ok) {
      p.reject(rebuild(message.error));
      return;
    }
    const parsed = p.endpoint.reply.safeParse(message.reply);
    if (parsed.success) p.resolve(parsed.data);
    else p.reject(new QubesError('INTERNAL', `${p.endpoint.method} answered with a reply that does not match its contract`));
  }

  /** Ends the session: the service finishes, releases what it holds, and exits. */
  async close(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => this.child.once('exit', () => resolve()));
    this.child.stdin!.end();
    await exited;
  }
}

function rebuild(body: ErrorBody | undefined): QubesError {
  if (body === undefined || !isErrorCode(body.code)) return new QubesError('INTERNAL', body?.message ?? 'the offline service failed');
  return new QubesError(body.code, body.message, { ...(body.details === undefined ? {} : { details: body.details }), remote: true });
}

function lastLine(text: string): string {
  return text.trim().split('\n').pop() ?? '';
}
