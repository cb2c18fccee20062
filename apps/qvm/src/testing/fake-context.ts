import type { Command } from 'commander';
import { EventEmitter } from 'node:events';
import { PassThrough } from 'node:stream';
import type { Bus, EventSubscription, ReceivedEvent, Requester, RequestOptions } from '@qubes-bus/bus';
import type { Endpoint, ReplyOf, RequestInputOf } from '@qubes-bus/contracts';
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
