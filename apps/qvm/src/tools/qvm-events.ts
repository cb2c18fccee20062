import { Command, InvalidArgumentError } from 'commander';
import type { EventSubscription } from '@qubes-bus/bus';
import { QubesError } from '@qubes-bus/contracts';
import { UsageError } from '../errors';
import { eventSelection, formatEventJson, formatEventLine, lostWarning } from '../events';
import type { ToolContext } from '../tool';

interface EventsOptions {
  all?: boolean;
  fromSeq?: number;
  json?: boolean;
}

function sequence(untrusted: string): number {
  if (!/^\d{1,15}$/.test(untrusted)) throw new InvalidArgumentError('a stream sequence is a whole number');
  return Number(untrusted);
}

/**
 * qvm-events: print events as they happen, for people or (`--json`) scripts, from a stream
 * sequence on (`--from-seq`), until SIGINT or SIGTERM.
 */
export function qvmEvents(ctx: ToolContext): Command {
  return new Command('qvm-events')
    .description('Print events as they happen, until interrupted')
    .argument('[vmname...]', 'only the events of these qubes (default: every event)')
    .option('--all', 'every event, of every qube and of the system (the default)')
    .option('--from-seq <seq>', 'first print the stored events after this stream sequence (the last one a previous run printed)', sequence)
    .option('--json', 'one JSON object per line, with the stream sequence (seq) of each event')
    .action(async (names: string[], options: EventsOptions) => {
      if (options.all && names.length > 0) throw new UsageError('give either --all or qube names, not both');
      const { pattern, keep } = eventSelection(names);
      let subscription: EventSubscription | undefined;
      let stopped = false;
      const stop = (): void => {
        stopped = true;
        void subscription?.stop();
      };
      // A reader that went away (`qvm-events | head -1`) ends the watch like a signal does.
      const outputClosed = (err: NodeJS.ErrnoException): void => {
        if (err.code !== 'EPIPE') throw err;
        stop();
      };
      ctx.signals.on('SIGINT', stop);
      ctx.signals.on('SIGTERM', stop);
      ctx.stdout.on('error', outputClosed);
      let last = options.fromSeq;
      try {
        const bus = await ctx.bus();
        if (stopped) return;
        subscription = await bus.subscribe(pattern, options.fromSeq === undefined ? {} : { after: options.fromSeq });
        if (stopped) return;
        if (subscription.lost !== null) ctx.stderr.write(lostWarning(subscription.lost));
        for await (const event of subscription) {
          last = event.seq;
          if (!keep(event.message.vm)) continue;
          ctx.stdout.write(options.json ? formatEventJson(event) : formatEventLine(event));
        }
      } finally {
        ctx.signals.off('SIGINT', stop);
        ctx.signals.off('SIGTERM', stop);
        ctx.stdout.off('error', outputClosed);
        await subscription?.stop();
      }
      if (!stopped) {
        // The stream ended without being asked to: the bus went away.
        const resume = last === undefined ? '' : `; resume with --from-seq ${last}`;
        throw new QubesError('BUS_UNREACHABLE', `the connection to the bus was lost${resume}`);
      }
    });
}
