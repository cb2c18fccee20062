import type { ReceivedEvent } from '@qubes-bus/bus';
import { SUBJECT_ROOT, Subjects } from '@qubes-bus/contracts';

/**
 * How qvm-events prints an event: `<vm> <event> key=value...` for people (`-` for events of
 * the system rather than of a VM), or one JSON object per line for scripts, with the stream
 * sequence to resume from.
 */

/** Envelope fields, printed in front (vm, event) or not at all (ts), rather than as key=value. */
const ENVELOPE: ReadonlySet<string> = new Set(['vm', 'event', 'ts']);

/** A value as a word: as is when it is one, else quoted (JSON); none is `None`, as Qubes prints it. */
export function eventValue(value: unknown): string {
  if (value === null || value === undefined) return 'None';
  if (typeof value === 'boolean') return value ? 'True' : 'False';
  if (typeof value === 'number') return String(value);
  if (typeof value === 'string') return /^[^\s"'\\=]+$/.test(value) ? value : JSON.stringify(value);
  return JSON.stringify(value);
}

export function formatEventLine(event: ReceivedEvent): string {
  const { message } = event;
  const fields = Object.entries(message)
    .filter(([key]) => !ENVELOPE.has(key))
    .map(([key, value]) => `${key}=${eventValue(value)}`);
  return `${[message.vm ?? '-', message.event, ...fields].join(' ')}\n`;
}

/** `{"seq":…,"subject":…,"vm":…,"event":…,"ts":…, …fields}` on one line. */
export function formatEventJson(event: ReceivedEvent): string {
  return `${JSON.stringify({ seq: event.seq, subject: event.subject, ...event.message })}\n`;
}

/** The warning for events asked for (`--from-seq`) that the stream no longer keeps. */
export function lostWarning(lost: { from: number; to: number }): string {
  const which = lost.from === lost.to ? `event ${lost.from} is` : `events ${lost.from} to ${lost.to} are`;
  return `WARNING: ${which} no longer kept by the event stream (older than its limits) and cannot be printed\n`;
}

/**
 * What to subscribe to for the events of `names` (qvm-events; qvm-shutdown --wait, for the VMs
 * it waits for). Every event (`--all`, or no VM named): the whole event stream (VM and
 * system events, `qubes.>`), in one subscription so that the order holds. One VM: its events.
 * Several: every VM's, kept when they are about one of them, again for the order.
 */
export function eventSelection(names: readonly string[]): { pattern: string; keep: (vm: string | undefined) => boolean } {
  if (names.length === 0) return { pattern: `${SUBJECT_ROOT}.>`, keep: () => true };
  if (names.length === 1) return { pattern: Subjects.vmEvents(names[0]), keep: () => true };
  const wanted = new Set(names);
  return { pattern: Subjects.vmEvents(), keep: (vm) => vm !== undefined && wanted.has(vm) };
}
