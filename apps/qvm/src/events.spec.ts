import { describe, expect, it } from '@jest/globals';
import type { ReceivedEvent } from '@qubes-bus/bus';
import { eventValue, formatEventJson, formatEventLine, lostWarning } from './events';

const propertySet: ReceivedEvent = {
  seq: 42,
  subject: 'qubes.vm.work.property-set.netvm',
  message: { vm: 'work', event: 'property-set:netvm', ts: '2024-01-01T00:00:00.000Z', name: 'netvm', newvalue: null, oldvalue: 'sys-net', revision: 'r7' },
};

describe('qvm-events output', () => {
  it('prints <vm> <event> key=value for people, without the envelope, None for no value', () => {
    expect(formatEventLine(propertySet)).toBe('work property-set:netvm name=netvm newvalue=None oldvalue=sys-net revision=r7\n');
  });

  it('prints system events with - for the VM, and quotes values that are not one word', () => {
    const event: ReceivedEvent = {
      seq: 3,
      subject: 'qubes.app.property-set.default_kernel',
      message: { event: 'property-set:default_kernel', ts: 't', name: 'default_kernel', newvalue: '6.1 lts', oldvalue: '', debug: true },
    };
    expect(formatEventLine(event)).toBe('- property-set:default_kernel name=default_kernel newvalue="6.1 lts" oldvalue="" debug=True\n');
    expect(eventValue(12)).toBe('12');
    expect(eventValue({ a: 1 })).toBe('{"a":1}');
  });

  it('prints one JSON object per line for scripts, with the stream sequence and subject', () => {
    const line = formatEventJson(propertySet);
    expect(line.endsWith('\n')).toBe(true);
    expect(line.trimEnd()).not.toContain('\n');
    expect(JSON.parse(line)).toEqual({ seq: 42, subject: 'qubes.vm.work.property-set.netvm', ...propertySet.message });
  });

  it('warns about events the stream no longer keeps', () => {
    expect(lostWarning({ from: 3, to: 9 })).toBe('WARNING: events 3 to 9 are no longer kept by the event stream (older than its limits) and cannot be printed\n');
    expect(lostWarning({ from: 3, to: 3 })).toMatch(/^WARNING: event 3 is /);
  });
});
