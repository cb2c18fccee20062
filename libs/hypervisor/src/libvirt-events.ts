import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { requireBinary } from '@qubes-bus/daemons';
import type { LifecycleEvent } from './port';

// libvirt's lifecycle events, read from `virsh event` (the binding has none).

const EVENT_LINE = /^(\d{4}-\d\d-\d\d) (\d\d:\d\d:\d\d\.\d+)([+-]\d{4}): event 'lifecycle' for domain '([^']*)': (\S+) ?(.*)$/;
const KINDS: Record<string, LifecycleEvent['kind']> = {
  Defined: 'defined',
  Undefined: 'undefined',
  Started: 'started',
  Suspended: 'suspended',
  Resumed: 'resumed',
  Stopped: 'stopped',
  Shutdown: 'shutdown',
  PMSuspended: 'pmsuspended',
  Crashed: 'crashed',
};

/** One line of `virsh event --timestamp`, or null for anything else. */
export function parseEventLine(line: string): LifecycleEvent | null {
  const m = EVENT_LINE.exec(line.trim());
  if (m === null) return null;
  const kind = KINDS[m[5]!];
  if (kind === undefined) return null;
  const offset = `${m[3]!.slice(0, 3)}:${m[3]!.slice(3)}`;
  return { domain: m[4]!, kind, detail: m[6]!.trim(), ts: new Date(`${m[1]}T${m[2]}${offset}`).toISOString() };
}

/**
 * A long-lived `virsh event --all --loop --timestamp` (the binding has no events), its lines
 * parsed; restarted with backoff if it dies, after which `onResync` says events may be missed.
 */
export function watchLifecycle(uri: string, onEvent: (event: LifecycleEvent) => void, onResync: () => void): { stop(): Promise<void> } {
  let child: ChildProcess | undefined;
  let running: Promise<void> = Promise.resolve();
  let stopped = false;
  let delay = 250;
  const timers = new Set<NodeJS.Timeout>();
  const later = (ms: number, what: () => void): void => {
    const timer = setTimeout(() => {
      timers.delete(timer);
      what();
    }, ms);
    timers.add(timer);
  };
  const run = (first: boolean): void => {
    if (stopped) return;
    const startedAt = Date.now();
    const monitor = spawn(requireBinary('virsh', 'to watch libvirt events'), ['-c', uri, 'event', '--all', '--loop', '--timestamp'], {
      stdio: ['ignore', 'pipe', 'ignore'],
    });
    child = monitor;
    createInterface({ input: monitor.stdout! }).on('line', (line) => {
      const event = parseEventLine(line);
      if (event !== null) onEvent(event);
    });
    monitor.once('spawn', () => {
      if (!first) onResync();
      // virsh says nothing once it listens: what changed before then is read again a little later.
      later(1_000, () => !stopped && monitor.exitCode === null && onResync());
    });
    running = new Promise<void>((resolve) => {
      let ended = false;
      const end = (): void => {
        if (ended) return;
        ended = true;
        resolve();
        if (stopped) return;
        delay = Date.now() - startedAt > 10_000 ? 250 : Math.min(delay * 2, 5_000);
        later(delay, () => run(false));
      };
      monitor.once('exit', end);
      monitor.once('error', end); // could not be spawned at all
    });
  };
  run(true);
  return {
    async stop() {
      stopped = true;
      for (const timer of timers) clearTimeout(timer);
      timers.clear();
      child?.kill('SIGTERM');
      await running;
    },
  };
}
