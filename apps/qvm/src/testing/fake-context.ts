import { CommanderError, type Command } from 'commander';
import { EventEmitter } from 'node:events';
import { PassThrough } from 'node:stream';
import type { Bus, EventSubscription, ReceivedEvent, Requester, RequestOptions } from '@qubes-bus/bus';
import { QubesError, type Endpoint, type ErrorCode, type ReplyOf, type RequestInputOf, type VmSummary } from '@qubes-bus/contracts';
import { failureReport } from '../errors';
import type { ToolContext } from '../tool';

/** For unit tests of a tool: a context whose Admin API answers from `answer`, recording every call. */
export interface Call {
  method: string;
  body: unknown;
  dest: string;
}

export interface FakeContext extends ToolContext {
  readonly calls: Call[];
  readonly signals: EventEmitter;
  out(): string;
  err(): string;
}

export function fakeContext(
  answer: (call: Call) => unknown,
  options: { subscription?: EventSubscription; subscribed?: (pattern: string, after: number | undefined) => void; tty?: boolean } = {},
): FakeContext {
  const calls: Call[] = [];
  let stdout = '';
  let stderr = '';
  const sink = (write: (text: string) => void): NodeJS.WritableStream =>
    ({
      on: () => undefined,
      off: () => undefined,
      write(chunk: string | Uint8Array): boolean {
        write(typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString());
        return true;
      },
    }) as unknown as NodeJS.WritableStream;
  const requester: Requester = {
    async request<E extends Endpoint>(endpoint: E, body: RequestInputOf<E>, requestOptions: RequestOptions = {}): Promise<ReplyOf<E>> {
      const call = { method: endpoint.method, body, dest: requestOptions.dest ?? 'dom0' };
      calls.push(call);
      return answer(call) as ReplyOf<E>;
    },
  };
  const stdin = Object.assign(new PassThrough(), { isTTY: options.tty ?? false });
  const bus = {
    async subscribe(pattern: string, subscribeOptions: { after?: number } = {}) {
      options.subscribed?.(pattern, subscribeOptions.after);
      if (options.subscription === undefined) throw new Error('this test subscribes to nothing');
      return options.subscription;
    },
  } as unknown as Bus;
  return {
    calls,
    stdin,
    stdout: sink((text) => (stdout += text)),
    stderr: sink((text) => (stderr += text)),
    signals: new EventEmitter(),
    api: async () => requester,
    bus: async () => bus,
    out: () => stdout,
    err: () => stderr,
  };
}

/** A subscription delivering `events`, then waiting until stopped (as a live one does). */
export function fakeSubscription(events: readonly ReceivedEvent[], lost: EventSubscription['lost'] = null): EventSubscription & { stopped: boolean } {
  let release: () => void = () => undefined;
  const stopped = new Promise<void>((resolve) => (release = resolve));
  const state = { stopped: false };
  async function* iterate(): AsyncGenerator<ReceivedEvent> {
    yield* events;
    await stopped;
  }
  const iterator = iterate();
  return {
    lost,
    get stopped() {
      return state.stopped;
    },
    [Symbol.asyncIterator]: () => iterator,
    async stop() {
      state.stopped = true;
      release();
    },
  };
}

/** Parses `argv` with the tool's command as main.ts does, commander's own output silenced. */
export async function runTool(make: (ctx: ToolContext) => Command, ctx: ToolContext, argv: readonly string[]): Promise<void> {
  await make(ctx)
    .exitOverride()
    .configureOutput({ writeOut: () => undefined, writeErr: () => undefined })
    .parseAsync([...argv], { from: 'user' });
}

/** A live subscription whose events the test sends (`push`) while the tool runs. */
export function liveSubscription(): EventSubscription & { push(event: ReceivedEvent): void; readonly stopped: boolean } {
  const queue: ReceivedEvent[] = [];
  let wake: () => void = () => undefined;
  const state = { stopped: false };
  async function* iterate(): AsyncGenerator<ReceivedEvent> {
    for (;;) {
      const next = queue.shift();
      if (next !== undefined) {
        yield next;
        continue;
      }
      if (state.stopped) return;
      await new Promise<void>((resolve) => (wake = resolve));
    }
  }
  const iterator = iterate();
  return {
    lost: null,
    get stopped() {
      return state.stopped;
    },
    push(event) {
      queue.push(event);
      wake();
    },
    [Symbol.asyncIterator]: () => iterator,
    async stop() {
      state.stopped = true;
      wake();
    },
  };
}

/** What a user of the tool sees: its output, main.ts's `ERROR: ` lines for a failure, and the exit status. */
export interface Seen {
  status: number;
  stdout: string;
  stderr: string;
}

/** Runs the tool as runTool() does, and turns a failure into what main.ts prints and its exit status. */
export async function runSeen(make: (ctx: ToolContext) => Command, ctx: FakeContext, argv: readonly string[]): Promise<Seen> {
  let status = 0;
  let errors = '';
  try {
    await runTool(make, ctx, argv);
  } catch (err) {
    if (err instanceof CommanderError) return { status: err.exitCode === 0 ? 0 : 2, stdout: ctx.out(), stderr: `ERROR: ${err.message.replace(/^error: /, '')}\n` };
    const report = failureReport(err);
    status = report.status;
    errors = report.lines.map((line) => `ERROR: ${line}\n`).join('');
  }
  return { status, stdout: ctx.out(), stderr: ctx.err() + errors };
}

/** A row of admin.vm.List: an AppVM, halted, unless `fields` say otherwise. */
export function vmSummary(name: string, fields: Partial<VmSummary> = {}): VmSummary {
  return { name, class: 'AppVM', state: 'Halted', label: 'red', template: null, netvm: null, revision: 'r', ...fields };
}

/** An error as the registry sends it over the bus. */
export function registryError(code: ErrorCode, message: string, vm?: string): QubesError {
  return new QubesError(code, message, vm === undefined ? {} : { details: { vm } });
}
